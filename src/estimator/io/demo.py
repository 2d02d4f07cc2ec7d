"""Write the bundled demo data set (:func:`estimator.demo.make_demo`) to a folder.

Files: ``collars.csv``, ``surveys.csv``, ``assays_2011-06-28.csv``, ``assays_2011-09-14.csv``,
``zones.csv``, one OBJ wireframe per zone (``offset.obj`` ...), ``demo.yaml``, the run config
that reads them (relative paths), and ``demo-2011-06-28.yaml``, the same with the first tranche
only (the tranche-update story). Every file is written atomically (a temporary name in the same
folder, then ``os.replace``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml

from estimator.demo import make_demo
from estimator.io.output import write_text

__all__ = ["obj_text", "write_demo"]

CONFIG_NAME = "demo.yaml"
#: The config of the first tranche alone (the June release): run it, then update with
#: ``demo.yaml`` (both tranches) into the same run folder.
FIRST_TRANCHE_NAME = "demo-2011-06-28.yaml"

_YAML_HEADER = """\
# Lac des Iles-style demo (synthetic, seed {seed}): estimator run {config_name}
# Mine grid in metres (x east, y north, z elevation; surface at z = 5000), grades in g/t.
# The data hold deliberate errors for the data report: see the estimator.demo docstring.
"""


def obj_text(vertices: np.ndarray, faces: np.ndarray, comment: str = "") -> str:
    """Wavefront OBJ text: ``v x y z`` lines, then ``f i j k`` (1-based) triangles."""
    lines = [f"# {line}" for line in comment.splitlines()]
    lines += [f"v {x:.3f} {y:.3f} {z:.3f}" for x, y, z in np.asarray(vertices, float)]
    lines += [f"f {i} {j} {k}" for i, j, k in np.asarray(faces, np.int64) + 1]
    return "\n".join(lines) + "\n"


def write_demo(directory: str | Path, seed: int = 2011) -> Path:
    """Write the demo data set and its config into ``directory`` (created if needed).

    Parameters
    ----------
    directory : str or pathlib.Path
        Destination folder; existing demo files there are replaced.
    seed : int
        Seed of :func:`estimator.demo.make_demo`.

    Returns
    -------
    pathlib.Path
        The config file (``demo.yaml``).
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    data = make_demo(seed)
    tables = {"collars.csv": data.collars, "surveys.csv": data.surveys, "zones.csv": data.zones}
    for name, frame in {**tables, **data.assays}.items():
        write_text(out / name, frame.to_csv(index=False, lineterminator="\n"))
    for dom in data.config["domains"]:
        vertices, faces = data.meshes[dom["name"]]
        note = f"{dom['zone_code']} zone wireframe, {data.config['name']} (mine grid, metres)"
        write_text(out / dom["wireframe"], obj_text(vertices, faces, note))
    header = _YAML_HEADER.format(seed=seed, config_name=data.config["name"])
    body = yaml.safe_dump(data.config, sort_keys=False, default_flow_style=None, width=100)
    first = dict(data.config, data=dict(data.config["data"], assays=data.config["data"]["assays"][:1]))
    first_header = (
        f"# The first tranche alone (the 2011-06-28 release) of the demo {data.config['name']}:\n"
        f"#   estimator run {FIRST_TRANCHE_NAME}, then estimator update {CONFIG_NAME}\n"
        "# (both tranches, the same run folder): the update re-estimates what the second\n"
        "# tranche can change and explains the change.\n"
    )
    first_body = yaml.safe_dump(first, sort_keys=False, default_flow_style=None, width=100)
    write_text(out / FIRST_TRANCHE_NAME, first_header + first_body)
    return write_text(out / CONFIG_NAME, header + body)
