"""The demo bundled in configs/demo is exactly what `estimator demo` writes (seed 2011)."""

from pathlib import Path

import pandas as pd
import pandas.testing as pdt

from estimator.io.demo import write_demo

BUNDLE = Path(__file__).resolve().parents[1] / "configs" / "demo"


def test_bundled_demo_matches_the_generator(tmp_path):
    write_demo(tmp_path, seed=2011)
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted(p.name for p in BUNDLE.iterdir() if p.is_file())
    for name in written:
        if name.endswith(".csv"):
            # numbers through text: compare as tables so a last-digit change in a random field
            # generator would show as a clear diff
            pdt.assert_frame_equal(
                pd.read_csv(tmp_path / name, dtype=str), pd.read_csv(BUNDLE / name, dtype=str)
            )
        else:
            assert (tmp_path / name).read_text() == (BUNDLE / name).read_text(), name
