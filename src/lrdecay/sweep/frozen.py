"""The module the sweep's forkserver imports (:data:`lrdecay.startup.FORKSERVER_MODULE`)."""

from __future__ import annotations

from lrdecay import startup

startup.start("forkserver")
