"""Vectorised rendering of synthetic faces: parameter arrays in, uint8 images out.

A batch of B images is rendered at once: every primitive (ellipse, capsule, lip curve) is a soft
coverage mask computed on a [B, H, W] grid from per-image parameters of shape [B, 1, 1], then
alpha-composited into a float [B, H, W, 3] canvas. Coordinates are in half-image units
(x right, y down, the image spans [-1, 1]). Pose is applied by mapping the pixel grid into face
coordinates (inverse roll/scale/shift); yaw is approximated by shifting each feature sideways in
proportion to its depth and foreshortening it. Only numpy and PIL are used.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from distfer.data.synth.params import ACTION_UNITS

_AU = {name: i for i, name in enumerate(ACTION_UNITS)}
F32 = np.float32


class _Canvas:
    """Grid, face-space coordinates and compositing for one batch."""

    def __init__(self, p: dict[str, np.ndarray], size: int) -> None:
        b = len(p["face_a"])
        t = (np.arange(size, dtype=F32) + 0.5) / size * 2 - 1
        gx, gy = t[None, None, :], t[None, :, None]
        c = lambda k: p[k].astype(F32)[:, None, None]  # noqa: E731
        cr, sr = np.cos(c("roll")), np.sin(c("roll"))
        dx, dy = (gx - c("shift_x")) / c("scale"), (gy - c("shift_y")) / c("scale")
        self.X = cr * dx + sr * dy    # [B, H, W] face-space x (before yaw)
        self.Y = -sr * dx + cr * dy   # [B, H, W] face-space y
        self.GX = np.broadcast_to(gx, (b, size, size))
        self.GY = np.broadcast_to(gy, (b, size, size))
        self.cyaw, self.syaw = np.cos(c("yaw")), np.sin(c("yaw"))
        self.edge = F32(1.6 / size) / c("scale")  # soft-edge width: ~0.8 px
        self.img = np.empty((b, size, size, 3), dtype=F32)
        self.b, self.size = b, size

    def xd(self, depth: float) -> np.ndarray:
        """Face-space x of a feature at ``depth`` (0 = face outline plane) under yaw."""
        return (self.X - depth * self.syaw) / self.cyaw

    def cover(self, d: np.ndarray) -> np.ndarray:
        """Soft coverage of a signed distance (negative inside)."""
        return np.clip(0.5 - d / self.edge, 0, 1)

    def paint(self, alpha: np.ndarray, color: np.ndarray) -> None:
        """Composite ``color`` ([B, 3] or [3]) with coverage ``alpha`` [B, H, W].

        Only the images and the bounding box where ``alpha > 0`` are touched (most features
        cover a small part of the canvas, occluders appear in few images); elsewhere the
        blend would leave the pixels bit-identical anyway (x * 1 + 0 * c == x).
        """
        alpha = np.broadcast_to(alpha, self.img.shape[:3])
        hit = alpha.reshape(self.b, -1).max(1) > 0
        if not hit.any():
            return
        rows = np.flatnonzero(alpha.max(axis=(0, 2)) > 0)
        cols = np.flatnonzero(alpha.max(axis=(0, 1)) > 0)
        ys, xs = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
        col = np.broadcast_to(np.asarray(color, dtype=F32).reshape(-1, 1, 1, 3), (self.b, 1, 1, 3))
        if hit.all():
            a, sub = alpha[:, ys, xs, None], self.img[:, ys, xs]
            sub *= 1 - a
            sub += a * col
            return
        idx = np.flatnonzero(hit)
        a = alpha[idx, ys, xs][..., None]
        sub = self.img[idx, ys, xs]
        sub *= 1 - a
        sub += a * col[idx]
        self.img[idx, ys, xs] = sub


def _c(v: np.ndarray) -> np.ndarray:
    return np.asarray(v, dtype=F32)[:, None, None]


def ellipse_d(x: np.ndarray, y: np.ndarray, cx, cy, a, b) -> np.ndarray:
    """Approximate signed distance to an axis-aligned ellipse."""
    r = np.sqrt(((x - cx) / a) ** 2 + ((y - cy) / b) ** 2)
    return (r - 1) * np.minimum(a, b)


def capsule_d(x: np.ndarray, y: np.ndarray, x0, y0, x1, y1, r) -> np.ndarray:
    """Signed distance to a segment (x0, y0)-(x1, y1) of half-thickness ``r``."""
    vx, vy = x1 - x0, y1 - y0
    h = np.clip(((x - x0) * vx + (y - y0) * vy) / (vx * vx + vy * vy + 1e-9), 0, 1)
    return np.sqrt((x - x0 - h * vx) ** 2 + (y - y0 - h * vy) ** 2) - r


def _background(cv: _Canvas, p: dict[str, np.ndarray]) -> None:
    bg = p["bg"].astype(F32)
    cv.img[:] = bg[:, None, None, :] * (1 - 0.08 * cv.GY[..., None])  # plain, faint vertical fade
    clutter = _c(p["clutter"])
    g = p["grating"]
    for j in range(2):  # two coloured gratings
        fx, fy, ph = (_c(g[:, j, k]) for k in range(3))
        wave = 0.5 + 0.5 * np.sin((fx - 0.5) * 18 * cv.GX + (fy - 0.5) * 18 * cv.GY + ph * 6.3)
        cv.paint(clutter * 0.5 * wave, p["clutter_col"][:, j])
    geo = p["clutter_geo"]
    for j in range(2, 6):  # four boxes / blobs
        cx, cy = _c(geo[:, j, 0]) * 2 - 1, _c(geo[:, j, 1]) * 2 - 1
        w, h = 0.1 + 0.5 * _c(geo[:, j, 2]), 0.1 + 0.5 * _c(geo[:, j, 3])
        if j % 2:
            d = np.maximum(np.abs(cv.GX - cx) - w, np.abs(cv.GY - cy) - h)
        else:
            d = ellipse_d(cv.GX, cv.GY, cx, cy, w, h)
        cv.paint(clutter * cv.cover(d), p["clutter_col"][:, j])


def _head(cv: _Canvas, p: dict[str, np.ndarray], au: dict[str, np.ndarray]) -> None:
    fa, fb, fcy = _c(p["face_a"]), _c(p["face_b"]), _c(p["face_cy"])
    skin, hair = p["skin"], p["hair"]
    x0 = cv.xd(0.0)
    # clothes, neck, long hair behind the head
    cv.paint(cv.cover(ellipse_d(x0, cv.Y, 0, fcy + fb + 0.55, fa * 1.9, 0.5)), p["clothes"])
    long_hair = _c(p["hair_long"])
    cv.paint(long_hair * cv.cover(ellipse_d(x0, cv.Y, 0, fcy + 0.12, fa * 1.3, fb * 1.15)), hair)
    neck = np.maximum(np.abs(x0) - fa * 0.5, fcy + 0.3 - cv.Y)
    cv.paint(cv.cover(np.maximum(neck, cv.Y - fcy - fb - 0.35)), skin * 0.82)
    cv.paint(cv.cover(ellipse_d(x0, cv.Y, 0, fcy - _c(p["hair_up"]), fa * _c(p["hair_w"]), fb * 0.9)), hair)
    # the face; a dropped jaw lengthens the chin
    b = np.where(cv.Y > fcy, fb + 0.07 * au["jaw_drop"], fb)
    face_d = ellipse_d(x0, cv.Y, 0, fcy, fa, b)
    cv.paint(cv.cover(face_d), skin)
    cv.paint(cv.cover(face_d) * np.clip(1 + face_d / (0.25 * fa), 0, 1) * 0.25, skin * 0.7)  # rim shade
    # fringe: hair over the forehead, always above the highest brow position
    top = fcy - fb
    brow_y = fcy + _c(p["eye_y"]) - _c(p["brow_gap"])
    y_fr = top + _c(p["fringe"]) * np.maximum(brow_y - 0.2 - top, 0)
    y_fr = y_fr + 0.025 * np.sin(x0 * 22 + _c(p["fringe_phase"]))
    cv.paint(cv.cover(np.maximum(face_d, cv.Y - y_fr)), hair)


def _brows_eyes(cv: _Canvas, p: dict[str, np.ndarray], au: dict[str, np.ndarray]) -> None:
    fcy = _c(p["face_cy"])
    ey, sep, ew, eh0 = fcy + _c(p["eye_y"]), _c(p["eye_sep"]), _c(p["eye_w"]), _c(p["eye_h"])
    ibr, obr, bl = au["inner_brow_raise"], au["outer_brow_raise"], au["brow_lowerer"]
    xb = cv.xd(0.35)
    base = ey - _c(p["brow_gap"]) - _c(p["rest_brow"])
    y_in = base - 0.16 * ibr + 0.08 * bl
    y_out = base - 0.13 * obr + 0.035 * bl + 0.01
    brow_col = p["hair"] * 0.6
    thick = _c(p["brow_thick"]) * (1 + 0.25 * np.clip(bl, 0, None))
    dark = p["skin"] * 0.55
    # forehead wrinkles (brow raise) and the vertical furrow (brow lowerer)
    raise_amt = np.clip(0.5 * (ibr + obr) - 0.25, 0, 1)
    for k in (1, 2):
        d = capsule_d(xb, cv.Y, -sep * 0.9, base - 0.07 * k - 0.15, sep * 0.9, base - 0.07 * k - 0.15, 0.01)
        cv.paint(raise_amt * 0.6 * cv.cover(d), dark)
    furrow = np.clip(bl - 0.2, 0, 1)
    for s in (-1, 1):
        d = capsule_d(xb, cv.Y, s * 0.04, base - 0.02, s * 0.035, base + 0.07, 0.01)
        cv.paint(furrow * 0.6 * cv.cover(d), dark)
    eh = np.maximum(eh0 * (1 + 0.9 * au["upper_lid_raise"] - 0.6 * au["lid_tighten"]), 0.006)
    for s in (-1, 1):
        xi = s * (sep - ew * 0.95) * (1 - 0.18 * np.clip(bl, 0, None))
        cv.paint(cv.cover(capsule_d(xb, cv.Y, xi, y_in, s * (sep + ew * 1.1), y_out, thick)), brow_col)
        white = cv.cover(ellipse_d(xb, cv.Y, s * sep, ey, ew, eh))
        cv.paint(white, np.array([0.95, 0.95, 0.93]))
        cv.paint(white * cv.cover(ellipse_d(xb, cv.Y, s * sep, ey, eh0 * 0.95, eh0 * 0.95)), p["iris"])
        cv.paint(white * cv.cover(ellipse_d(xb, cv.Y, s * sep, ey, eh0 * 0.4, eh0 * 0.4)), np.zeros(3))
        lid = np.abs(ellipse_d(xb, cv.Y, s * sep, ey, ew, eh)) - 0.007
        cv.paint(cv.cover(np.maximum(lid, cv.Y - ey)), p["hair"] * 0.3)


def _nose_mouth(cv: _Canvas, p: dict[str, np.ndarray], au: dict[str, np.ndarray]) -> None:
    fcy = _c(p["face_cy"])
    ey, nl, nw = fcy + _c(p["eye_y"]), _c(p["nose_len"]), _c(p["nose_w"])
    nwr, pull, dep = au["nose_wrinkle"], au["lip_corner_pull"], au["lip_corner_depress"]
    shade = p["skin"] * 0.62
    xn = cv.xd(0.55)
    ny = ey + nl - 0.04 * np.clip(nwr, 0, None)
    cv.paint(0.35 * cv.cover(capsule_d(xn, cv.Y, 0, ey + 0.03, nw * 0.3, ny - 0.02, 0.008)), shade)
    for s in (-1, 1):
        nos = ellipse_d(xn, cv.Y, s * nw * (0.55 + 0.15 * nwr), ny, nw * 0.35, 0.018)
        cv.paint(0.8 * cv.cover(nos), shade * 0.7)
    wr = np.clip(nwr - 0.1, 0, 1) * 0.9
    for k in range(3):  # wrinkles across the bridge of the nose
        yk = ey + 0.04 + 0.035 * k
        cv.paint(wr * cv.cover(capsule_d(xn, cv.Y, -nw * 0.9, yk, nw * 0.9, yk, 0.013)), shade * 0.75)
    # mouth: lip curves around a centre line whose corners move up (pull) or down (depress)
    xm = cv.xd(0.4)
    my = fcy + _c(p["mouth_y"])
    mw = _c(p["mouth_w"]) * (1 + 0.4 * au["lip_stretch"] + 0.2 * pull - 0.3 * au["lip_press"])
    lift = 0.11 * pull - 0.085 * dep + _c(p["rest_corner"]) - 0.015 * au["lip_stretch"]
    u = (xm) / mw
    h = np.clip(1 - u * u, 0, 1)
    inside = cv.cover((np.abs(u) - 1) * mw)
    yc = my - lift * u * u
    up = 0.09 * np.clip(au["upper_lip_raise"], 0, None) + 0.04 * np.clip(au["jaw_drop"], 0, None)
    down = 0.17 * np.clip(au["jaw_drop"], 0, None) + 0.02 * np.clip(au["lip_stretch"], 0, None)
    yu, yl = yc - up * h, yc + down * h
    lt = _c(p["lip_thick"]) * (1 - 0.55 * np.clip(au["lip_press"], 0, 1)) * np.sqrt(h)
    lip = np.maximum(yu - lt * 0.8 - cv.Y, cv.Y - yl - lt)
    cv.paint(inside * cv.cover(lip), p["lip"])
    cavity = inside * cv.cover(np.maximum(yu - cv.Y, cv.Y - yl))
    cv.paint(cavity, np.array([0.18, 0.05, 0.06]))
    teeth_h = 0.04 * np.clip(au["upper_lip_raise"] + 0.8 * pull, 0, 1.2)
    cv.paint(cavity * cv.cover(cv.Y - yu - teeth_h), np.array([0.93, 0.92, 0.86]))
    cv.paint(inside * cv.cover(np.abs(cv.Y - yc) - 0.006), p["lip"] * 0.45)  # seam
    fold = np.clip(0.6 * pull + 0.6 * nwr + 0.3 * au["upper_lip_raise"] - 0.2, 0, 1) * 0.55
    for s in (-1, 1):
        d = capsule_d(xm, cv.Y, s * (nw + 0.03), ny + 0.005, s * (mw + 0.03), yc - lift + 0.01, 0.01)
        cv.paint(fold * cv.cover(d), shade)


def _occluders(cv: _Canvas, p: dict[str, np.ndarray]) -> None:
    fcy = _c(p["face_cy"])
    ey, sep, ew = fcy + _c(p["eye_y"]), _c(p["eye_sep"]), _c(p["eye_w"])
    xg = cv.xd(0.45)
    gl = _c(p["glasses"])
    for s in (-1, 1):
        lens = ellipse_d(xg, cv.Y, s * sep, ey, ew * 1.6, ew * 1.25)
        cv.paint(gl * _c(p["tint"]) * cv.cover(lens), p["frame"])
        cv.paint(gl * cv.cover(np.abs(lens) - 0.012), p["frame"])
    cv.paint(gl * cv.cover(capsule_d(xg, cv.Y, -sep + ew * 1.5, ey, sep - ew * 1.5, ey, 0.012)), p["frame"])
    hand, hx, hy = _c(p["hand"]), _c(p["hand_x"]), fcy + _c(p["hand_y"])
    hs = p["hand_skin"].astype(F32)
    cv.paint(hand * cv.cover(ellipse_d(cv.X, cv.Y, hx, hy, 0.17, 0.2)), hs)
    for k in range(4):
        fx = hx + (k - 1.5) * 0.085
        cv.paint(hand * cv.cover(capsule_d(cv.X, cv.Y, fx, hy - 0.1, fx * 1.05, hy - 0.38 + 0.04 * abs(k - 1.5), 0.035)), hs)
    ca, sa = _c(np.cos(p["bar_angle"])), _c(np.sin(p["bar_angle"]))
    dist = np.abs(ca * cv.GX + sa * cv.GY - _c(p["bar_off"])) - _c(p["bar_w"])
    cv.paint(_c(p["bar"]) * cv.cover(dist), p["bar_col"])


def _photometric(cv: _Canvas, p: dict[str, np.ndarray]) -> np.ndarray:
    light = 1 + _c(p["light_g"]) * (_c(p["light_cos"]) * cv.GX + _c(p["light_sin"]) * cv.GY)
    img = cv.img * light[..., None] * p["cast"].astype(F32)[:, None, None, :]
    img = np.clip(img, 0, 1) ** _c(p["gamma"])[..., None]
    img = 0.5 + (img - 0.5) * _c(p["contrast"])[..., None]
    return img


def _degrade(img: np.ndarray, p: dict[str, np.ndarray], i: int, size: int) -> np.ndarray:
    """Per-image low resolution, blur and pixel noise (uint8 [H, W, 3] in and out)."""
    frac, sigma, sd = float(p["low_res"][i]), float(p["blur"][i]), float(p["noise"][i])
    if frac < 0.999 or sigma > 0.05:
        im = Image.fromarray(img)
        if frac < 0.999:
            small = max(8, round(size * frac))
            im = im.resize((small, small), Image.Resampling.BOX).resize((size, size), Image.Resampling.BILINEAR)
        if sigma > 0.05:
            im = im.filter(ImageFilter.GaussianBlur(sigma))
        img = np.asarray(im)
    if sd > 0:
        rng = np.random.default_rng(int(p["noise_seed"][i]))
        img = np.clip(img + rng.normal(0, 255 * sd, img.shape), 0, 255).astype(np.uint8)
    return img


def render_batch(p: dict[str, np.ndarray], size: int) -> np.ndarray:
    """Render one batch of faces.

    Args:
        p: render parameters from :func:`distfer.data.synth.params.sample_domain`, every array
            with leading dimension B (already sliced to the batch).
        size: output side length in pixels.

    Returns:
        uint8 array [B, size, size, 3].
    """
    cv = _Canvas(p, size)
    au = {name: _c(p["au"][:, i]) for name, i in _AU.items()}
    _background(cv, p)
    _head(cv, p, au)
    _brows_eyes(cv, p, au)
    _nose_mouth(cv, p, au)
    _occluders(cv, p)
    img = (np.clip(_photometric(cv, p), 0, 1) * 255 + 0.5).astype(np.uint8)
    return np.stack([_degrade(img[i], p, i, size) for i in range(cv.b)])
