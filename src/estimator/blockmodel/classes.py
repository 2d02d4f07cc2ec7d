"""Smoothing of resource classes: isolated blocks take their neighbours' class.

A classification by rules leaves "spotted dog" patterns: a few indicated blocks in an
inferred area, an inferred block inside indicated ones. A Qualified Person removes them before
reporting. :func:`smooth_classes` does it by a rule that can be stated in one sentence: *a
connected group of blocks of one class (face neighbours, within one domain) smaller than
``min_blocks`` blocks takes the class most common among the classified blocks that touch it
(face neighbours of another class in the same domain); on a tie, the less confident class
(the later rule) wins; a group with no classified neighbour keeps its class.* Every group is
judged on the classes as the rules gave them, in one pass, so the result does not depend on
the order the groups are visited. Unclassified blocks (code 0: not estimated or no rule met)
are never given a class and never give theirs.
"""

from __future__ import annotations

import numpy as np

#: face neighbours in (z, y, x)
_STRUCTURE = np.array(
    [[[0, 0, 0], [0, 1, 0], [0, 0, 0]],
     [[0, 1, 0], [1, 1, 1], [0, 1, 0]],
     [[0, 0, 0], [0, 1, 0], [0, 0, 0]]], dtype=bool,
)  # fmt: skip


def smooth_classes(codes: np.ndarray, min_blocks: int) -> tuple[np.ndarray, dict]:
    """Isolated groups of blocks smaller than ``min_blocks`` take their neighbours' class.

    Parameters
    ----------
    codes : (n_domains, nz, ny, nx) integer array
        Class codes per domain: 0 unclassified (or outside the domain), k the k-th rule.
    min_blocks : int
        Groups of fewer blocks than this are smoothed.

    Returns
    -------
    smoothed : array like ``codes``
    counts : dict
        ``groups`` (groups smoothed) and ``blocks`` (blocks whose class changed).

    Examples
    --------
    >>> c = np.ones((1, 1, 3, 3), dtype=np.uint8); c[0, 0, 1, 1] = 2
    >>> out, counts = smooth_classes(c, 2)
    >>> int(out[0, 0, 1, 1]), counts
    (1, {'groups': 1, 'blocks': 1})
    """
    from scipy import ndimage

    codes = np.asarray(codes)
    out = codes.copy()
    groups = blocks = 0
    if min_blocks <= 1:
        return out, {"groups": 0, "blocks": 0}
    for d in range(codes.shape[0]):
        dom = codes[d]
        labels = np.zeros(dom.shape, dtype=np.int64)
        n_total = 0
        for c in np.unique(dom[dom > 0]).tolist():
            lab, n = ndimage.label(dom == c, structure=_STRUCTURE)
            labels[lab > 0] = lab[lab > 0] + n_total
            n_total += n
        if not n_total:
            continue
        sizes = np.bincount(labels.ravel(), minlength=n_total + 1)
        small = (sizes < min_blocks) & (np.arange(n_total + 1) > 0)
        if not small.any():
            continue
        # (group, neighbour class) for every face between a small group and another class
        pairs = []
        for axis in range(3):
            for step in (1, -1):
                a = [slice(None)] * 3
                b = [slice(None)] * 3
                a[axis] = slice(None, -1) if step == 1 else slice(1, None)
                b[axis] = slice(1, None) if step == 1 else slice(None, -1)
                la, ca, cb = labels[tuple(a)], dom[tuple(a)], dom[tuple(b)]
                hit = small[la] & (cb > 0) & (cb != ca)
                pairs.append(np.column_stack([la[hit], cb[hit]]))
        pairs = np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)
        if not len(pairs):
            continue
        keys, counts = np.unique(pairs, axis=0, return_counts=True)
        # per group: the most common neighbour class, the higher code (less confident) on ties
        order = np.lexsort((keys[:, 1], counts, keys[:, 0]))
        keys, counts = keys[order], counts[order]
        last = np.r_[keys[1:, 0] != keys[:-1, 0], True]
        new_class = np.zeros(n_total + 1, dtype=np.int64)
        new_class[keys[last, 0]] = keys[last, 1]
        change = new_class[labels] > 0
        out[d][change] = new_class[labels][change]
        groups += int(last.sum())
        blocks += int(change.sum())
    return out, {"groups": groups, "blocks": blocks}
