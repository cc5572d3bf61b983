"""Notifications from ``serve``: every so often, the status of every served tree, sent as
``metrictree status --notify`` would send it (once per period and rule, whatever the schedule)."""

from __future__ import annotations

import logging
import threading

from .. import notifying
from ..errors import MetrictreeError
from .catalog import Catalog
from .config import ServeConfig
from .operations import data_for

log = logging.getLogger("metrictree.notify")


class Schedule:
    """A daemon thread checking every tree's status each ``every`` seconds (the first time at start)."""

    def __init__(self, config: ServeConfig, notify_config: str, every: float):
        self.catalog = Catalog(config)
        self.notify = notifying.load_config(notify_config)  # a mistake in it stops serve before it starts
        self.notify_path = notify_config
        self.every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="metrictree-notify", daemon=True)

    def start(self) -> None:
        log.info("checking %d tree(s) every %g s and notifying per %s", len(self.catalog.names()), self.every,
                 self.notify_path)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def run_once(self) -> list[notifying.Report]:
        """One round over every served tree; a tree that does not load or whose data fails is logged and skipped."""
        try:
            config = notifying.load_config(self.notify_path)  # re-read, so edits apply without a restart
        except MetrictreeError as exc:
            log.error("the notify config does not load; using the last good one:\n%s", exc.render())
            config = self.notify
        self.notify = config
        reports = []
        for loaded in self.catalog.all():
            if loaded.tree is None:
                log.error("tree %s is not checked: it does not load", loaded.entry.name)
                continue
            try:
                data = data_for(loaded.tree, loaded)
                report = notifying.check_and_notify(loaded.tree, data, config, params=dict(loaded.entry.params))
            except MetrictreeError as exc:
                log.error("tree %s is not checked:\n%s", loaded.entry.name, exc.render())
                continue
            log.info("%s: %s", loaded.entry.name, report.summary())
            for channel, payload in report.dry_run:
                log.info("would send to %s:\n%s", channel, payload)
            reports.append(report)
        return reports

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:  # a bug must not silently end the schedule
                log.exception("the notification round failed")
            self._stop.wait(self.every)
