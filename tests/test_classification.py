"""Resource classes: the first rule a block meets, on the first grade's kriging outputs."""

import numpy as np
import xarray as xr

from estimator.config import parse_config
from estimator.estimation import classify


def test_first_matching_rule_wins_and_unestimated_blocks_stay_unclassified():
    raw = {
        "name": "t",
        "data": {"samples": "s.csv"},
        "grades": ["pd"],
        "block_model": {"origin": [0, 0, 0], "block_size": [1, 1, 1], "shape": [5, 1, 1]},
        "estimation": {"passes": [{"ranges": [10, 10, 10]}, {"scale": 2.0}]},
        "classification": {
            "classes": [
                {"name": "measured", "max_pass": 1, "min_slope": 0.8, "min_holes": 3},
                {"name": "indicated", "max_pass": 1, "min_slope": 0.5},
                {"name": "inferred", "max_pass": 2},
            ]
        },
    }
    cfg = parse_config(raw, check_files=False)
    dims = ("domain", "z", "y", "x")

    def var(values):
        return (dims, np.array(values, dtype=float).reshape(1, 1, 1, 5))

    ds = xr.Dataset(
        {
            "pd": var([1.0, 2.0, 3.0, 4.0, np.nan]),
            "pd_pass": var([1, 1, 1, 2, 0]),
            "pd_slope": var([0.9, 0.9, 0.6, 0.95, np.nan]),
            "pd_holes": var([3, 2, 5, 6, 0]),
            "pd_n": var([20, 20, 20, 20, 0]),
            "pd_dist": var([0.3, 0.3, 0.3, 0.3, np.nan]),
        }
    )
    out = classify(ds, cfg)
    assert out["class"].values.ravel().tolist() == [
        "measured",
        "indicated",
        "indicated",
        "inferred",
        "",
    ]


def test_max_search_dist_is_in_units_of_the_pass_ellipsoid():
    raw = {
        "name": "t",
        "data": {"samples": "s.csv"},
        "grades": ["pd"],
        "block_model": {"origin": [0, 0, 0], "block_size": [1, 1, 1], "shape": [5, 1, 1]},
        "estimation": {"passes": [{"ranges": [10, 5, 5]}, {"scale": 2.0}]},
        "classification": {"classes": [{"name": "indicated", "max_search_dist": 0.5},
                                       {"name": "inferred", "max_pass": 2}]},
    }  # fmt: skip
    cfg = parse_config(raw, check_files=False)
    dims = ("domain", "z", "y", "x")

    def var(values):
        return (dims, np.array(values, dtype=float).reshape(1, 1, 1, 5))

    # majors 10 (pass 1) and 20 (pass 2): 3/10, 8/10, 5/10, 9/20 of the ellipsoid
    ds = xr.Dataset({"pd": var([1, 1, 1, 1, np.nan]), "pd_pass": var([1, 1, 1, 2, 0]),
                     "pd_dist": var([3, 8, 5, 9, np.nan])})  # fmt: skip
    out = classify(ds, cfg)["class"].values.ravel().tolist()
    assert out == ["indicated", "inferred", "indicated", "indicated", ""]


def _codes(rows):
    return np.array(rows, dtype=np.uint8).reshape(1, 1, len(rows), len(rows[0]))


def test_smoothing_isolated_blocks_take_the_class_around_them():
    from estimator.blockmodel.classes import smooth_classes

    codes = _codes([[1, 1, 1, 1, 3],
                    [1, 2, 1, 3, 3],
                    [1, 1, 1, 3, 0],
                    [2, 2, 0, 0, 0]])  # fmt: skip
    out, counts = smooth_classes(codes, 2)
    # the single 2 inside the 1s becomes 1; the pair of 2s (size 2) and the 3s stay
    assert out[0, 0].tolist() == [[1, 1, 1, 1, 3], [1, 1, 1, 3, 3], [1, 1, 1, 3, 0],
                                  [2, 2, 0, 0, 0]]  # fmt: skip
    assert counts == {"groups": 1, "blocks": 1}
    out3, counts3 = smooth_classes(codes, 3)
    # now the pair of 2s (touching only 1s) becomes 1 too
    assert out3[0, 0, 3].tolist() == [1, 1, 0, 0, 0]
    assert counts3 == {"groups": 2, "blocks": 3}


def test_smoothing_ties_go_to_the_less_confident_class_and_unclassified_stays():
    from estimator.blockmodel.classes import smooth_classes

    codes = _codes([[1, 2, 3], [0, 0, 0]])
    out, counts = smooth_classes(codes, 2)
    # 1 sees only 2 -> 2; 2 sees 1 and 3 (one each) -> 3; 3 sees 2 -> 2 (judged on the input)
    assert out[0, 0].tolist() == [[2, 3, 2], [0, 0, 0]]
    assert counts["blocks"] == 3
    lone = _codes([[0, 0, 0], [0, 1, 0], [0, 0, 0]])
    assert smooth_classes(lone, 5)[0].tolist() == lone.tolist()  # no classified neighbour


def test_smoothing_stays_within_a_domain_and_in_3d():
    from estimator.blockmodel.classes import smooth_classes

    codes = np.ones((2, 3, 3, 3), dtype=np.uint8)
    codes[0, 1, 1, 1] = 2  # an island in 3-D, in domain 0
    codes[1] = 2  # domain 1 all 2: the island's only neighbours are in its own domain
    out, counts = smooth_classes(codes, 2)
    assert out[0].max() == 1 and (out[1] == 2).all()
    assert counts == {"groups": 1, "blocks": 1}
    # a brute-force check on random classes: every changed block was in a small group
    from scipy import ndimage

    rng = np.random.default_rng(4)
    codes = rng.choice([0, 1, 2, 3], size=(1, 6, 7, 8), p=[0.1, 0.5, 0.3, 0.1]).astype(np.uint8)
    out, _ = smooth_classes(codes, 3)
    for c in (1, 2, 3):
        lab, _ = ndimage.label(codes[0] == c, structure=ndimage.generate_binary_structure(3, 1))
        sizes = np.bincount(lab.ravel())
        changed = (out[0] != codes[0]) & (codes[0] == c)
        assert (sizes[lab[changed]] < 3).all()
    assert ((out == 0) == (codes == 0)).all()
