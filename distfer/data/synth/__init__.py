"""The embedded synthetic benchmark: procedurally rendered faces in the RAF-DB and SFEW layouts.

``generate(SynthConfig(out=DIR))`` (or ``distfer synth --out DIR``) writes ``DIR/rafdb``, a posed
lab source domain, and ``DIR/sfew``, an in-the-wild target domain with pose, lighting, colour
casts, blur, low resolution, occluders, clutter, weaker expressions and other class priors.
Modules: :mod:`.params` (random identities, action-unit expressions, domain nuisances),
:mod:`.render` (vectorised numpy rendering), :mod:`.generate` (layouts, atomic writes).
"""

from distfer.data.synth.generate import SFEW_FOLDERS, generate, read_meta, split_params
from distfer.data.synth.params import ACTION_UNITS, DOMAINS, LAB, PROTOTYPES, WILD, DomainSpec

__all__ = [
    "ACTION_UNITS", "DOMAINS", "LAB", "PROTOTYPES", "SFEW_FOLDERS", "WILD", "DomainSpec",
    "generate", "read_meta", "split_params",
]
