"""Where the aggregation protocol is chosen: SecAgg+ (default) or plain.

flwr 1.42 runs SecAgg+ only through the legacy path: ``SecAggPlusWorkflow``
inside ``DefaultWorkflow(fit_workflow=...)`` with a ``LegacyContext`` and a
strategy from ``flwr.server.strategy``; the client side is ``secaggplus_mod``
on a ``NumPyClient`` (``client/app.py``). This module and ``client/app.py``
are the only places that know it.
"""

from __future__ import annotations

from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

from server.config import RunConfig


def build_workflow(run: RunConfig) -> DefaultWorkflow:
    """The round loop: fit (masked by SecAgg+ when on), then evaluation."""
    if not run.secagg:
        return DefaultWorkflow()
    return DefaultWorkflow(
        fit_workflow=SecAggPlusWorkflow(
            num_shares=run.secagg_num_shares,
            reconstruction_threshold=run.secagg_reconstruction_threshold,
            max_weight=run.secagg_max_weight,
            clipping_range=run.secagg_clipping_range,
            quantization_range=run.secagg_quantization_range,
            timeout=run.secagg_timeout,
        )
    )
