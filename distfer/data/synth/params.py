"""Random parameters of the synthetic benchmark: identities, expressions, domain nuisances.

Pure numpy, seeded by the caller's :class:`numpy.random.Generator`. Everything the renderer
needs is drawn here, up front, as flat float32 arrays of length ``n`` (one entry per image),
so that rendering is a deterministic function of these arrays and the images do not depend on
how the work is split across processes.

Expressions are built from action-unit-like parameters (FACS-inspired, not FACS-exact). The
prototypes share action units the way real expressions do, so the classic confusions of
facial-expression recognition survive: fear and surprise both raise the brows and drop the jaw,
anger and disgust both lower the brows, and sadness differs from neutral only by a slight inner
brow raise and lip-corner depression, which all but vanishes at low intensity.

The domains differ the way a posed lab set differs from an in-the-wild one: the source shows
strong, stereotyped posed prototypes on frontal, evenly lit faces; the target shows weaker
spontaneous versions of the same expressions (:data:`SPONTANEOUS`: the same action units in
other proportions) under pose, lighting, colour casts, clutter, occluders and low resolution,
with other class priors. The nuisances alone barely hurt a source model trained with colour
and geometric augmentation; the change of expression style is what a source model cannot
know about and a target-supervised one learns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from distfer.classes import NUM_CLASSES

#: The action-unit-like parameters, in the column order of :data:`PROTOTYPES`.
ACTION_UNITS: tuple[str, ...] = (
    "inner_brow_raise",    # AU1
    "outer_brow_raise",    # AU2
    "brow_lowerer",        # AU4
    "upper_lid_raise",     # AU5 (negative: drooping lids)
    "lid_tighten",         # AU6/AU7 (cheek raise narrows the eyes too)
    "nose_wrinkle",        # AU9
    "upper_lip_raise",     # AU10
    "lip_corner_pull",     # AU12
    "lip_corner_depress",  # AU15
    "lip_stretch",         # AU20
    "lip_press",           # AU23/AU24
    "jaw_drop",            # AU26/AU27
)

# Rows: canonical classes 0..6 (Surprise, Fear, Disgust, Happiness, Sadness, Anger, Neutral).
PROTOTYPES: np.ndarray = np.array(
    [
        # IBR  OBR  BL   ULR   LT   NW   UpLR Pull Depr Strch Press Jaw
        [1.0, 1.0, 0.0, 0.9, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0],   # Surprise
        [0.9, 0.5, 0.6, 1.0, 0.3, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.55],  # Fear
        [0.0, 0.0, 0.6, 0.0, 0.4, 1.0, 0.9, 0.0, 0.6, 0.0, 0.0, 0.0],   # Disgust
        [0.0, 0.0, 0.0, 0.0, 0.6, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.2],   # Happiness
        [0.8, 0.0, 0.4, -0.3, 0.0, 0.0, 0.0, 0.0, 0.9, 0.0, 0.0, 0.0],  # Sadness
        [0.0, 0.0, 1.0, 0.5, 0.7, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0],   # Anger
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],   # Neutral
    ],
    dtype=np.float32,
)

#: Spontaneous ("in the wild") versions of the prototypes: the same action units in other
#: proportions, as spontaneous expressions differ from posed ones (Duchenne smiles with closed
#: lips, surprise with a half-open mouth, anger without pressed lips, sadness with a pressed
#: mouth). A domain's ``style`` blends posed (0) and spontaneous (1) prototypes.
SPONTANEOUS: np.ndarray = np.array(
    [
        # IBR  OBR  BL   ULR   LT   NW   UpLR Pull Depr Strch Press Jaw
        [0.8, 0.8, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.45],  # Surprise
        [0.8, 0.3, 0.5, 0.7, 0.2, 0.0, 0.0, 0.0, 0.2, 0.6, 0.0, 0.2],   # Fear
        [0.0, 0.0, 0.5, 0.0, 0.5, 0.8, 1.0, 0.0, 0.3, 0.0, 0.0, 0.0],   # Disgust
        [0.0, 0.0, 0.0, 0.0, 0.9, 0.0, 0.0, 0.8, 0.0, 0.0, 0.0, 0.0],   # Happiness
        [0.7, 0.0, 0.5, -0.4, 0.0, 0.0, 0.0, 0.0, 0.6, 0.0, 0.4, 0.0],  # Sadness
        [0.0, 0.0, 0.9, 0.2, 0.8, 0.0, 0.3, 0.0, 0.0, 0.0, 0.4, 0.0],   # Anger
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],   # Neutral
    ],
    dtype=np.float32,
)

#: RAF-DB basic test set is roughly this imbalanced; the lab source is kept near-uniform.
SOURCE_PRIORS: tuple[float, ...] = (0.15, 0.13, 0.13, 0.16, 0.14, 0.14, 0.15)
#: In-the-wild target: more Happy and Neutral, fewer Fear and Disgust (SFEW-like).
TARGET_PRIORS: tuple[float, ...] = (0.10, 0.08, 0.08, 0.24, 0.15, 0.14, 0.21)


@dataclass(frozen=True)
class DomainSpec:
    """How one domain is rendered: class priors, expression intensity and nuisances.

    Ranges are ``(low, high)`` of uniform draws; probabilities are per image.
    """

    name: str
    priors: tuple[float, ...]
    intensity: tuple[float, float]   # global expression intensity multiplier
    au_jitter: float                 # sd of per-AU Gaussian noise (idiosyncratic faces)
    style: float                     # 0 posed prototypes, 1 spontaneous ones (SPONTANEOUS)
    au_gain: tuple[float, float]     # per-AU multiplier of the prototype (how stereotyped)
    yaw: float                       # max |yaw| in radians
    roll: float                      # sd of roll in radians
    scale: tuple[float, float]
    shift: float                     # max |shift| of the face centre, in half-image units
    clutter: float                   # probability of a cluttered background
    light_gradient: tuple[float, float]
    color_cast: float                # max per-channel gain deviation from 1
    gamma: tuple[float, float]
    contrast: tuple[float, float]
    noise: tuple[float, float]       # sd of pixel noise (0..1 scale)
    blur: tuple[float, float]        # Gaussian blur sigma, pixels at the output size
    low_res: tuple[float, float]     # render-then-downsample size as a fraction of the output
    p_glasses: float
    p_hand: float
    p_bar: float


# Scales are relative to the renderer's full-body framing; > 1.3 gives the tight crop of
# aligned-face datasets (RAF-DB "aligned", SFEW "Aligned_Faces"): the face fills the image.
LAB = DomainSpec(
    name="lab", priors=SOURCE_PRIORS, intensity=(0.9, 1.2), au_jitter=0.06, style=0.0, au_gain=(0.9, 1.1),
    yaw=0.05, roll=0.03, scale=(1.45, 1.55), shift=0.015, clutter=0.0, light_gradient=(0.0, 0.05),
    color_cast=0.03, gamma=(0.95, 1.05), contrast=(0.95, 1.0), noise=(0.0, 0.005), blur=(0.0, 0.0),
    low_res=(1.0, 1.0), p_glasses=0.0, p_hand=0.0, p_bar=0.0,
)

WILD = DomainSpec(
    name="wild", priors=TARGET_PRIORS, intensity=(0.6, 1.0), au_jitter=0.08, style=1.0, au_gain=(0.75, 1.25),
    yaw=0.3, roll=0.15, scale=(1.3, 1.7), shift=0.08, clutter=0.9, light_gradient=(0.15, 0.6),
    color_cast=0.35, gamma=(0.6, 1.6), contrast=(0.5, 1.0), noise=(0.0, 0.04), blur=(0.0, 1.0),
    low_res=(0.5, 1.0), p_glasses=0.25, p_hand=0.15, p_bar=0.12,
)

DOMAINS: dict[str, DomainSpec] = {"lab": LAB, "wild": WILD}


def quota(n: int, priors: tuple[float, ...] | np.ndarray) -> np.ndarray:
    """Per-class counts summing to ``n``, proportional to ``priors`` (largest remainder).

    Returns:
        int64 array [NUM_CLASSES].
    """
    p = np.asarray(priors, dtype=np.float64)
    p = p / p.sum()
    raw = p * n
    counts = np.floor(raw).astype(np.int64)
    rest = n - int(counts.sum())
    order = np.argsort(-(raw - counts), kind="stable")
    counts[order[:rest]] += 1
    return counts


def sample_labels(rng: np.random.Generator, n: int, priors: tuple[float, ...]) -> np.ndarray:
    """``n`` labels with exactly :func:`quota` counts per class, in random order (int64 [n])."""
    labels = np.repeat(np.arange(NUM_CLASSES), quota(n, priors))
    return rng.permutation(labels)


def _u(rng: np.random.Generator, lo: float, hi: float, n: int) -> np.ndarray:
    return rng.uniform(lo, hi, n).astype(np.float32)


_HAIR = np.array([[0.08, 0.06, 0.05], [0.30, 0.18, 0.10], [0.55, 0.38, 0.20],
                  [0.85, 0.72, 0.45], [0.60, 0.25, 0.10], [0.65, 0.65, 0.65]], dtype=np.float32)
_SKIN_LIGHT = np.array([0.96, 0.80, 0.69], dtype=np.float32)
_SKIN_DARK = np.array([0.36, 0.24, 0.17], dtype=np.float32)


def sample_identities(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """Face geometry and colours of ``n`` random people (float32 arrays [n] or [n, 3])."""
    tone = rng.uniform(0, 1, n).astype(np.float32)[:, None]
    skin = _SKIN_LIGHT * (1 - tone) + _SKIN_DARK * tone
    skin = np.clip(skin * rng.uniform(0.94, 1.06, (n, 3)).astype(np.float32), 0, 1)
    hair = _HAIR[rng.integers(0, len(_HAIR), n)] * rng.uniform(0.8, 1.2, (n, 3)).astype(np.float32)
    return {
        "face_a": _u(rng, 0.46, 0.58, n), "face_b": _u(rng, 0.60, 0.74, n),
        "face_cy": _u(rng, 0.0, 0.08, n),
        "skin": skin, "hair": np.clip(hair, 0, 1), "lip": np.clip(skin * [0.78, 0.48, 0.48], 0, 1),
        "iris": rng.uniform(0.05, 0.45, (n, 3)).astype(np.float32),
        "clothes": rng.uniform(0.1, 0.9, (n, 3)).astype(np.float32),
        "hair_up": _u(rng, 0.04, 0.20, n), "hair_w": _u(rng, 1.02, 1.18, n),
        "hair_long": (rng.uniform(0, 1, n) < 0.4).astype(np.float32),
        "fringe": _u(rng, 0.0, 1.0, n), "fringe_phase": _u(rng, 0, 6.3, n),
        "eye_sep": _u(rng, 0.21, 0.26, n), "eye_y": _u(rng, -0.14, -0.07, n),
        "eye_w": _u(rng, 0.10, 0.13, n), "eye_h": _u(rng, 0.050, 0.064, n),
        "brow_gap": _u(rng, 0.10, 0.13, n), "brow_thick": _u(rng, 0.032, 0.046, n),
        "nose_len": _u(rng, 0.17, 0.23, n), "nose_w": _u(rng, 0.045, 0.07, n),
        "mouth_y": _u(rng, 0.30, 0.36, n), "mouth_w": _u(rng, 0.17, 0.22, n),
        "lip_thick": _u(rng, 0.030, 0.045, n),
        "rest_corner": rng.normal(0, 0.010, n).astype(np.float32),
        "rest_brow": rng.normal(0, 0.012, n).astype(np.float32),
    }


def sample_expressions(
    rng: np.random.Generator, labels: np.ndarray, spec: DomainSpec
) -> np.ndarray:
    """Action-unit activations for ``labels`` in domain ``spec``.

    Each image gets its domain's class prototype (posed, spontaneous or a blend: ``spec.style``)
    scaled by a global intensity and a per-AU factor, plus Gaussian noise on every AU (so
    neutral faces are not all identical).

    Returns:
        float32 array [n, len(ACTION_UNITS)], values roughly in [-0.4, 1.3].
    """
    n = len(labels)
    proto = ((1 - spec.style) * PROTOTYPES + spec.style * SPONTANEOUS)[labels]
    intensity = _u(rng, *spec.intensity, n)[:, None]
    per_au = rng.uniform(*spec.au_gain, proto.shape).astype(np.float32)
    noise = rng.normal(0, spec.au_jitter, proto.shape).astype(np.float32)
    return np.clip(proto * intensity * per_au + noise, -0.4, 1.3).astype(np.float32)


def sample_nuisances(rng: np.random.Generator, n: int, spec: DomainSpec) -> dict[str, np.ndarray]:
    """Pose, background, lighting, occluders and degradation of ``n`` images in ``spec``."""
    def flag(p: float) -> np.ndarray:
        return (rng.uniform(0, 1, n) < p).astype(np.float32)

    angle = _u(rng, 0, 2 * np.pi, n)
    return {
        "yaw": _u(rng, -spec.yaw, spec.yaw, n), "roll": rng.normal(0, spec.roll, n).astype(np.float32),
        "scale": _u(rng, *spec.scale, n),
        "shift_x": _u(rng, -spec.shift, spec.shift, n), "shift_y": _u(rng, -spec.shift, spec.shift, n),
        "bg": rng.uniform(0.55, 0.9, (n, 3)).astype(np.float32), "clutter": flag(spec.clutter),
        "clutter_col": rng.uniform(0, 1, (n, 6, 3)).astype(np.float32),
        "clutter_geo": rng.uniform(0, 1, (n, 6, 4)).astype(np.float32),
        "grating": rng.uniform(0, 1, (n, 2, 3)).astype(np.float32),
        "light_g": _u(rng, *spec.light_gradient, n), "light_cos": np.cos(angle), "light_sin": np.sin(angle),
        "cast": (1 + rng.uniform(-spec.color_cast, spec.color_cast, (n, 3))).astype(np.float32),
        "gamma": _u(rng, *spec.gamma, n), "contrast": _u(rng, *spec.contrast, n),
        "noise": _u(rng, *spec.noise, n), "blur": _u(rng, *spec.blur, n),
        "low_res": _u(rng, *spec.low_res, n),
        "glasses": flag(spec.p_glasses), "tint": _u(rng, 0.05, 0.7, n),
        "frame": rng.uniform(0.0, 0.35, (n, 3)).astype(np.float32),
        "hand": flag(spec.p_hand), "hand_x": _u(rng, -0.45, 0.45, n), "hand_y": _u(rng, 0.15, 0.75, n),
        "hand_skin": rng.uniform(0.3, 0.95, (n, 1)).astype(np.float32) * [1.0, 0.8, 0.68],
        "bar": flag(spec.p_bar), "bar_angle": _u(rng, 0, np.pi, n), "bar_off": _u(rng, -0.6, 0.6, n),
        "bar_w": _u(rng, 0.04, 0.10, n), "bar_col": rng.uniform(0, 1, (n, 3)).astype(np.float32),
        "noise_seed": rng.integers(0, 2**31 - 1, n).astype(np.int64),
    }


def sample_domain(
    rng: np.random.Generator, n: int, spec: DomainSpec
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Labels (int64 [n]) and every render parameter (dict of arrays, leading dim n)."""
    labels = sample_labels(rng, n, spec.priors)
    params = sample_identities(rng, n)
    params["au"] = sample_expressions(rng, labels, spec)
    params.update(sample_nuisances(rng, n, spec))
    return labels, {k: np.ascontiguousarray(v, dtype=v.dtype) for k, v in params.items()}
