"""The block model's volume adds up: sum(fraction x block volume) = each wireframe's own volume.

Checked on the configured grids of the demo and of the real Babbitt data (within 0.5 %).
"""

from pathlib import Path

import numpy as np
import pytest

from estimator.blockmodel.fractions import domain_fractions
from estimator.config import load_config
from estimator.estimation import grid_from_config
from estimator.io.wireframe import load_wireframe

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("name", ["demo/demo.yaml", "babbitt.yaml"], ids=["demo", "babbitt"])
def test_fraction_volume_matches_mesh_volume(name):
    cfg = load_config(CONFIGS / name)
    grid = grid_from_config(cfg)
    wireframes = {d.name: load_wireframe(d.wireframe) for d in cfg.domains}
    frac = domain_fractions(grid, cfg.block_model.subcells, cfg.domains, wireframes).fractions
    for i, dom in enumerate(cfg.domain_names):
        block_volume = float(frac[i].sum()) * grid.block_volume
        mesh_volume = wireframes[dom].volume
        assert abs(block_volume - mesh_volume) <= 0.005 * mesh_volume, dom
    # fractions are volume fractions: never above one, even summed over domains
    assert frac.sum(axis=0).max() <= 1.0 + 1e-12
    assert np.all(frac >= 0)
