"""``fedcare dashboard``: one run folder as a live page for the consortium
operator (or a researcher beside ``fedcare simulate``).

It reads only the run folder (``run_folder``, ``hospitals``, ``audit_view``,
``downloads``) and serves it with ``app.create_app``; binding beyond loopback
follows ``fedcare serve``'s rule (``shared_models.http_guard``).
"""

from server.dashboard.app import create_app, state

__all__ = ["create_app", "state"]
