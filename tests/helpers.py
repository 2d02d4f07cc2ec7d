"""Small builders shared by several test modules."""

import numpy as np


def box_mesh(lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """A closed, outward-wound box: ``(vertices (8, 3), faces (12, 3))``."""
    x0, y0, z0 = lo
    x1, y1, z1 = hi
    v = np.array(
        [[x0, y0, z0], [x1, y0, z0], [x1, y1, z0], [x0, y1, z0],
         [x0, y0, z1], [x1, y0, z1], [x1, y1, z1], [x0, y1, z1]], dtype=float
    )  # fmt: skip
    f = np.array(
        [[0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4],
         [1, 2, 6], [1, 6, 5], [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7]]
    )  # fmt: skip
    return v, f


def coarse_demo(folder, name: str = "demo10.yaml", first_tranche: bool = True, **sections):
    """The bundled demo copied into ``folder`` with its config on 10 m blocks (8 times fewer
    than the demo's 5 m grid; the same extent), ``sections`` replacing top-level sections.

    Returns ``(config path, config mapping)``.
    """
    import shutil
    from pathlib import Path

    import yaml

    demo = Path(__file__).resolve().parents[1] / "configs" / "demo"
    folder = Path(folder)
    for f in demo.iterdir():
        if f.is_file():
            shutil.copy(f, folder / f.name)
    src = "demo-2011-06-28.yaml" if first_tranche else "demo.yaml"
    raw = yaml.safe_load((folder / src).read_text())
    bm = raw["block_model"]
    bm["block_size"] = [10.0, 10.0, 10.0]
    bm["shape"] = [int(np.ceil(n / 2)) for n in bm["shape"]]
    bm["subcells"] = [2, 2, 2]
    raw["output"] = "run"
    raw.update(sections)
    path = folder / name
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path, raw
