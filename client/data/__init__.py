"""Hospital data: reading ECG, signal and vitals files, splits, normalisation.

Loaders return plain numpy containers (:class:`BeatSet`, :class:`SignalSet`,
:class:`VitalsSet`) and raise :class:`shared_models.errors.DataError` on bad input.
"""

from client.data.aami import AAMI_CLASSES, SYMBOL_TO_AAMI
from client.data.beats import load_beats
from client.data.paths import resolve_data_path
from client.data.signals import load_signals
from client.data.splits import split_contiguous, split_groups
from client.data.stats import (
    apply_signal_stats,
    apply_vitals_stats,
    fit_signal_stats,
    fit_vitals_stats,
    public_vitals_stats,
    signal_windows,
)
from client.data.types import BeatSet, SignalSet, Split, VitalsSet
from client.data.validate import validate
from client.data.vitals import load_vitals

__all__ = [
    "AAMI_CLASSES",
    "SYMBOL_TO_AAMI",
    "BeatSet",
    "SignalSet",
    "Split",
    "VitalsSet",
    "apply_signal_stats",
    "apply_vitals_stats",
    "fit_signal_stats",
    "fit_vitals_stats",
    "public_vitals_stats",
    "load_beats",
    "load_signals",
    "load_vitals",
    "resolve_data_path",
    "signal_windows",
    "split_contiguous",
    "split_groups",
    "validate",
]
