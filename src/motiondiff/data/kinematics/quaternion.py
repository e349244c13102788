"""Rotation helpers for numpy arrays and torch tensors alike (each function keeps its input's type).

Quaternions are (w, x, y, z) with the Hamilton product; `qrot(q, v)` rotates v by q. Rotation
matrices act on column vectors. The continuous 6D form of a rotation is its matrix's first two
columns, concatenated (`matrix_to_cont6d`); `cont6d_to_matrix` turns any 6 numbers back into a
rotation by Gram-Schmidt.
"""

import numpy as np
import torch


def _xp(x):
    """The array module of `x`: torch for tensors, numpy otherwise."""
    return torch if isinstance(x, torch.Tensor) else np


def cross(a, b):
    """Cross product over the last axis (..., 3)."""
    xp = _xp(a)
    ax, ay, az = a[..., 0], a[..., 1], a[..., 2]
    bx, by, bz = b[..., 0], b[..., 1], b[..., 2]
    return xp.stack([ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx], -1)  # (..., 3)


def normalize(v):
    """`v` divided by its norm over the last axis."""
    return v / _xp(v).sqrt((v * v).sum(-1))[..., None]


def qinv(q):
    """Inverse of unit quaternions (..., 4): the conjugate."""
    return _xp(q).stack([q[..., 0], -q[..., 1], -q[..., 2], -q[..., 3]], -1)  # (..., 4)


def qmul(q, r):
    """Hamilton product q * r of quaternions (..., 4): rotate by r, then by q."""
    w1, x1, y1, z1 = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    w2, x2, y2, z2 = r[..., 0], r[..., 1], r[..., 2], r[..., 3]
    return _xp(q).stack(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ],
        -1,
    )  # (..., 4)


def qrot(q, v):
    """Vectors v (..., 3) rotated by unit quaternions q (..., 4) (shapes broadcast)."""
    axis = q[..., 1:]  # (..., 3)
    uv = cross(axis, v)  # (..., 3)
    uuv = cross(axis, uv)  # (..., 3)
    return v + 2 * (q[..., :1] * uv + uuv)


def qbetween(u, v):
    """The shortest-arc unit quaternion (..., 4) that turns direction u (..., 3) onto direction v.

    Opposite directions (no unique shortest arc) get a half turn about an axis perpendicular to u.
    """
    xp = _xp(u)
    u, v = xp.broadcast_arrays(u, v) if xp is np else torch.broadcast_tensors(u, v)
    norms = xp.sqrt((u * u).sum(-1) * (v * v).sum(-1))  # (...,)
    q = xp.concatenate([(norms + (u * v).sum(-1))[..., None], cross(u, v)], -1)  # (..., 4)
    size = xp.sqrt((q * q).sum(-1))  # (...,)
    opposite = size <= 1e-6 * norms
    if opposite.any():
        x_axis = xp.zeros_like(u)
        x_axis[..., 0] = 1
        y_axis = xp.zeros_like(u)
        y_axis[..., 1] = 1
        helper = xp.where((xp.abs(u[..., 0]) < 0.9 * xp.sqrt((u * u).sum(-1)))[..., None], x_axis, y_axis)
        half_turn = xp.concatenate([xp.zeros_like(u[..., :1]), normalize(cross(u, helper))], -1)  # (..., 4)
        q = xp.where(opposite[..., None], half_turn, q)
        size = xp.where(opposite, xp.ones_like(size), size)
    return q / size[..., None]


def quat_to_matrix(q):
    """Rotation matrices (..., 3, 3) of unit quaternions (..., 4)."""
    xp = _xp(q)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    rows = [
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ]
    return xp.stack([xp.stack(row, -1) for row in rows], -2)  # (..., 3, 3)


def matrix_to_cont6d(matrix):
    """Continuous 6D form (..., 6): the first two columns of the rotation matrices (..., 3, 3)."""
    return _xp(matrix).concatenate([matrix[..., :, 0], matrix[..., :, 1]], -1)  # (..., 6)


def cont6d_to_matrix(cont6d):
    """Rotation matrices (..., 3, 3) from 6D forms (..., 6) by Gram-Schmidt on the two columns."""
    first = normalize(cont6d[..., :3])  # (..., 3)
    third = normalize(cross(first, cont6d[..., 3:]))  # (..., 3)
    second = cross(third, first)  # (..., 3)
    return _xp(cont6d).stack([first, second, third], -1)  # (..., 3, 3): columns


def quat_to_cont6d(q):
    """Continuous 6D form (..., 6) of unit quaternions (..., 4)."""
    return matrix_to_cont6d(quat_to_matrix(q))


def yaw_quat(angle):
    """Unit quaternions (..., 4) turning by `angle` radians (...) about +y (counter-clockwise seen from above)."""
    xp = _xp(angle)
    zero = xp.zeros_like(angle)
    return xp.stack([xp.cos(angle / 2), zero, xp.sin(angle / 2), zero], -1)  # (..., 4)
