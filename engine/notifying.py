"""Alerts that reach people: each fired alert and off-track target, once per period, to a webhook and/or e-mail.

``metrictree status TREE --data … --notify notify.toml`` (or ``metrictree serve --notify`` on a schedule):

1. `notices` turns a `Status` into one `Notice` per fired alert and per target in a state worth telling
   (``off track`` and ``missed`` by default), each with the value, the threshold, the gap and the top
   root cause (from ``Tree.explain`` of the rule's metric, over the rule's slice, into the period);
2. `notify` sends those not yet sent for their period on each channel: a webhook (Slack-compatible
   JSON, or the notice as JSON) and e-mail (SMTP, one message per run listing the new notices);
   each delivery is retried with exponential back-off on errors that may pass (network, HTTP 5xx and
   429, SMTP 4xx); a permanent refusal is reported at once;
3. what was delivered is recorded in a small JSON state file, replaced atomically (written beside it,
   then renamed), under a lock so a scheduled ``serve`` and a cron job do not both send; a rule is never
   sent twice on a channel for the same period. A dry run prints what would be sent and records nothing.

The notify config (TOML)::

    state = "notify-state.json"       # relative to this file (default: .metrictree-notify.json beside it)
    send = ["alerts", "off track", "missed"]
    retries = 3                        # after the first try
    backoff_seconds = 2                # then 4, 8 … (capped at 60)
    timeout_seconds = 10
    dry_run = false
    [webhook]
    url_env = "SLACK_WEBHOOK_URL"      # or url = "https://hooks.slack.com/services/…"
    format = "slack"                   # or "json": the notice itself
    [email]
    host = "smtp.example.com"
    port = 587
    security = "starttls"              # "none", "starttls" or "ssl"
    username_env = "SMTP_USER"
    password_env = "SMTP_PASSWORD"
    from = "metrictree <kpi@example.com>"
    to = ["crm-team@example.com"]
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import logging
import os
import smtplib
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import attrs

from . import syntax as s
from .errors import MetrictreeError, UsageError, did_you_mean, error
from .escaping import printable
from .model import Alert, Target, Tree
from .narrating import change_in_points, number
from .rules import MISSED, OFF_TRACK, TARGET_STATES, AlertStatus, Status, TargetStatus, value_text

log = logging.getLogger("metrictree.notify")

CHANNELS = ("webhook", "email")
_TOP_KEYS = ("state", "send", "retries", "backoff_seconds", "timeout_seconds", "dry_run", "webhook", "email")
_WEBHOOK_KEYS = ("url", "url_env", "format")
_EMAIL_KEYS = ("host", "port", "security", "username_env", "password_env", "from", "to", "subject_prefix")
_MAX_BACKOFF = 60.0


# --------------------------------------------------------------------------- config


@attrs.frozen
class WebhookSettings:
    url: str
    format: str = "slack"


@attrs.frozen
class EmailSettings:
    host: str
    port: int
    sender: str
    to: tuple[str, ...]
    security: str = "starttls"
    username: str | None = None
    password: str | None = None
    subject_prefix: str = "[metrictree]"


@attrs.frozen
class NotifyConfig:
    """A parsed notify config.

    Attributes:
        path: the config file.
        state: the state file recording what was sent.
        send: ``alerts`` and the target states to tell people about.
        webhook, email: the channels (at least one).
        retries, backoff_seconds, timeout_seconds: how hard to try each delivery.
        dry_run: print what would be sent; send and record nothing.
    """

    path: str
    state: str
    send: tuple[str, ...] = ("alerts", OFF_TRACK, MISSED)
    webhook: WebhookSettings | None = None
    email: EmailSettings | None = None
    retries: int = 3
    backoff_seconds: float = 2.0
    timeout_seconds: float = 10.0
    dry_run: bool = False


def _fail(path: Path, message: str, hint: str | None = None) -> UsageError:
    return UsageError(error(f"{path}: {message}", hint=hint, code="notify-config"))


def _keys(path: Path, table: Any, where: str, known: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise _fail(path, f"{where} must be a table", f"write it as [{where}] with key = value lines")
    for key in table:
        if key not in known:
            raise _fail(path, f"unknown key '{key}' in {where}", did_you_mean(key, known) or
                        f"known keys: {', '.join(known)}")
    return table


def _from_env(path: Path, table: dict[str, Any], key: str, where: str, required: bool) -> str | None:
    """``key`` as written, or the environment variable named by ``key_env``."""
    if key in table:
        return str(table[key])
    name = table.get(f"{key}_env")
    if name is None:
        if required:
            raise _fail(path, f"{where} needs {key} or {key}_env")
        return None
    value = os.environ.get(str(name))
    if not value:
        raise _fail(path, f"{where}: the environment variable {name} (from {key}_env) is not set",
                    f"export {name}=…")
    return value


def load_config(path: str | os.PathLike, dry_run: bool | None = None) -> NotifyConfig:
    """Read and check a notify config; ``dry_run`` overrides the file's."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise _fail(path, "no such notify config", "see docs/serve.md, 'Notifications'") from None
    except OSError as exc:
        raise _fail(path, f"cannot read it: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise _fail(path, f"not valid TOML: {exc}") from None
    path = path.resolve()
    _keys(path, raw, "the notify config", _TOP_KEYS)
    send = raw.get("send", ["alerts", OFF_TRACK, MISSED])
    known = ("alerts", *TARGET_STATES)
    if not isinstance(send, list) or not all(isinstance(x, str) and x in known for x in send):
        raise _fail(path, f"send must be a list of: {', '.join(repr(k) for k in known)}")
    webhook = email = None
    if "webhook" in raw:
        table = _keys(path, raw["webhook"], "webhook", _WEBHOOK_KEYS)
        url = _from_env(path, table, "url", "[webhook]", required=True)
        if not url.startswith(("http://", "https://")):
            raise _fail(path, "[webhook] url must start with http:// or https://")
        fmt = table.get("format", "slack")
        if fmt not in ("slack", "json"):
            raise _fail(path, f"[webhook] format must be \"slack\" or \"json\", not {fmt!r}")
        webhook = WebhookSettings(url, fmt)
    if "email" in raw:
        table = _keys(path, raw["email"], "email", _EMAIL_KEYS)
        for key in ("host", "from", "to"):
            if key not in table:
                raise _fail(path, f"[email] needs {key}")
        to = table["to"] if isinstance(table["to"], list) else [table["to"]]
        security = table.get("security", "starttls")
        if security not in ("none", "starttls", "ssl"):
            raise _fail(path, f"[email] security must be \"none\", \"starttls\" or \"ssl\", not {security!r}")
        port = table.get("port", {"none": 25, "starttls": 587, "ssl": 465}[security])
        if not isinstance(port, int):
            raise _fail(path, "[email] port must be a number")
        user = _from_env(path, table, "username", "[email]", required=False) if "username_env" in table else None
        password = _from_env(path, table, "password", "[email]", required=False) if "password_env" in table else None
        email = EmailSettings(str(table["host"]), port, str(table["from"]), tuple(str(x) for x in to), security,
                              user, password, str(table.get("subject_prefix", "[metrictree]")))
    if webhook is None and email is None:
        raise _fail(path, "no channel to send to", "add a [webhook] table with url, or an [email] table")
    numbers = {}
    for key, default, low in (("retries", 3, 0), ("backoff_seconds", 2.0, 0), ("timeout_seconds", 10.0, 0.1)):
        value = raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < low:
            raise _fail(path, f"{key} must be a number of at least {low}")
        numbers[key] = value
    state = path.parent / raw.get("state", ".metrictree-notify.json")
    given_dry = raw.get("dry_run", False)
    if not isinstance(given_dry, bool):
        raise _fail(path, "dry_run must be true or false")
    return NotifyConfig(str(path), str(state), tuple(send), webhook, email, int(numbers["retries"]),
                        float(numbers["backoff_seconds"]), float(numbers["timeout_seconds"]),
                        given_dry if dry_run is None else dry_run)


# --------------------------------------------------------------------------- notices


@attrs.frozen
class Notice:
    """One thing to tell people: a fired alert or a target off its plan, at one period.

    Attributes:
        key: the rule, stable across runs (``alert crm_ltv: change(ltv) < -10%``).
        period: the period it is about; with ``key``, what is sent once.
        kind: ``alert`` or ``target``.
        tree, tree_title: the tree.
        title: the alert's message (else its condition) or the target's title.
        severity: the alert's; ``critical`` for a missed target, ``warning`` for one off track.
        state: ``fired``, ``off track``, ``missed`` …
        condition: the rule in tree syntax, with its slice.
        metric: the metric explained for the root cause.
        value, threshold, gap: the value now, what it is compared with (an alert's limit; a target's plan
            now, its goal once due), and value − threshold for an alert, goal − value for a target.
        value_text, threshold_text, gap_text, goal_text: the same for people.
        root_cause: the top root cause in words (``None`` when there is none, with ``root_cause_note`` saying why).
        main_driver: the driver down the formulas that carries most of the metric's move, in words.
    """

    key: str
    period: str
    kind: str
    tree: str
    tree_title: str | None
    title: str
    severity: str
    state: str
    condition: str
    metric: str | None
    value: float | None
    threshold: float | None
    gap: float | None
    value_text: str
    threshold_text: str
    gap_text: str
    goal_text: str | None = None
    root_cause: str | None = None
    root_cause_note: str | None = None
    main_driver: str | None = None

    def headline(self) -> str:
        return f"{self.severity.upper()} · {self.tree_title or self.tree} · {self.title} ({self.period})"

    def lines(self) -> list[str]:
        what = "alert fired" if self.kind == "alert" else f"target {self.state}"
        threshold = "threshold" if self.kind == "alert" else ("plan now" if self.state != MISSED else "goal")
        out = [f"{what}: {self.condition}",
               f"value {self.value_text} · {threshold} {self.threshold_text} · gap {self.gap_text}"
               + (f" · goal {self.goal_text}" if self.goal_text and threshold != "goal" else "")]
        if self.main_driver:
            out.append(f"main driver: {self.main_driver}")
        if self.root_cause:
            out.append(f"top root cause: {self.root_cause}")
        elif self.root_cause_note:
            out.append(f"top root cause: none ({self.root_cause_note})")
        return out

    def text(self) -> str:
        return "\n".join([self.headline(), *self.lines()])

    def to_dict(self) -> dict[str, Any]:
        return {**attrs.asdict(self), "text": self.text()}


def _alert_threshold(alert: Alert) -> float | None:
    condition = alert.condition
    if isinstance(condition, s.Binary) and condition.op in s.COMPARISONS:
        right = condition.right
        if isinstance(right, s.Unary) and right.op == "-" and isinstance(right.operand, s.Literal):
            value = right.operand.value
            return -float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        if isinstance(right, s.Literal) and isinstance(right.value, int | float) and not isinstance(right.value, bool):
            return float(right.value)
    return None


def _with_slice(text: str, where: str | None) -> str:
    return f"{text} where {where}" if where else text


def _alert_notice(tree: Tree, alert: Alert, found: AlertStatus) -> Notice:
    threshold = _alert_threshold(alert)
    gap = found.value - threshold if found.value is not None and threshold is not None else None
    unit = found.unit
    condition = _with_slice(found.condition, found.where)
    return Notice(
        key=f"alert {tree.name}: {condition}", period=found.at or "", kind="alert", tree=tree.name,
        tree_title=tree.title, title=found.message or found.condition, severity=found.severity, state=found.state,
        condition=condition, metric=alert.metrics[0] if alert.metrics else None, value=found.value,
        threshold=threshold, gap=gap, value_text=found.value_text,
        threshold_text=value_text(threshold, unit) if threshold is not None else found.condition.split(None, 2)[-1],
        gap_text=change_in_points(gap, unit) if gap is not None else "—")


def _target_notice(tree: Tree, target: Target, found: TargetStatus) -> Notice:
    due = found.state == MISSED
    threshold = found.goal if due or found.planned is None else found.planned
    current = found.deadline_value if due and found.deadline_value is not None else found.current
    gap = found.goal - current if current is not None else found.gap
    condition = _with_slice(f"{target.metric} {found.op} {found.show(found.goal)} by {found.deadline}", found.where)
    return Notice(
        key=f"target {tree.name}: {condition}", period=found.at or "", kind="target", tree=tree.name,
        tree_title=tree.title, title=found.title, severity="critical" if due else "warning", state=found.state,
        condition=condition, metric=found.metric, value=current, threshold=threshold, gap=gap,
        value_text=found.show(current), threshold_text=found.show(threshold),
        gap_text=change_in_points(gap, found.unit), goal_text=found.show(found.goal))


def notices(tree: Tree, status: Status, data: Mapping[str, Any] | None = None,
            send: Sequence[str] = ("alerts", OFF_TRACK, MISSED), params: Mapping[str, Any] | None = None,
            top_root_cause: bool = True) -> list[Notice]:
    """The notices a status calls for: fired alerts (when ``alerts`` is in ``send``) and targets in the states
    named in ``send``; with ``data``, each carries the top root cause of its metric's move into the period."""
    out: list[Notice] = []
    rules: list[tuple[Alert | Target, Notice]] = []
    if "alerts" in send:
        for alert, found in zip(tree.alerts, status.alerts, strict=True):
            if found.fired:
                rules.append((alert, _alert_notice(tree, alert, found)))
    for target, found in zip(tree.targets, status.targets, strict=True):
        if found.state in send:
            rules.append((target, _target_notice(tree, target, found)))
    causes: dict[tuple[str, str | None], tuple[str | None, str | None, str | None]] = {}
    for rule, notice in rules:
        if top_root_cause and data is not None and notice.metric and notice.period:
            slice_key = (notice.metric, rule.where.to_source() if rule.where is not None else None)
            if slice_key not in causes:
                causes[slice_key] = _root_cause(tree, data, rule, notice.metric, notice.period, params)
            cause, note, driver = causes[slice_key]
            notice = attrs.evolve(notice, root_cause=cause, root_cause_note=note, main_driver=driver)
        out.append(notice)
    return out


def _root_cause(tree: Tree, data: Mapping[str, Any], rule: Alert | Target, metric: str, period: str,
                params: Mapping[str, Any] | None) -> tuple[str | None, str | None, str | None]:
    """The top root cause of ``metric``'s move into ``period`` over the rule's slice, in words (or why none),
    and its main driver."""
    from .rules import _sliced_data  # the one place a rule's slice is applied to the data

    try:
        sliced = _sliced_data(tree, data, rule, [metric]) if rule.where is not None else data
        explanation = tree.explain(sliced, metric, current=period, params=params, top=5)
    except MetrictreeError as exc:
        return None, (exc.errors or exc.diagnostics)[0].message, None
    found = explanation.to_dict()
    driver = _driver_text(main_driver(found))
    top = top_root_cause(found)
    if top is None:
        return None, "no segment stands out", driver
    where = " & ".join(f"{k} = {v}" for k, v in (top.get("where") or {}).items()) or "all"
    share = top.get("share")
    label = tree.metrics[top["metric"]].title if top.get("metric") in tree.metrics else top.get("metric")
    unit = found.get("unit")
    text = (f"{label} in {where}: {change_in_points(top.get('contribution'), unit)} of the "
            f"{change_in_points(found.get('change'), unit)} change in {found.get('label', metric)}")
    if share is not None:
        text += f" ({share * 100:.0f} %)"
    return text, None, driver


def main_driver(explanation: Mapping[str, Any]) -> dict[str, Any] | None:
    """Down the formulas, the driver carrying most of the change at each level, while it carries at least half
    of it; the deepest such metric that has drivers of its own (else the deepest leaf)."""
    chain: list[dict[str, Any]] = []
    nodes = explanation.get("drivers") or []
    while True:
        candidates = [d for d in nodes if d.get("kind") == "formula" and d.get("contribution") is not None]
        if not candidates:
            break
        best = max(candidates, key=lambda d: abs(d["contribution"]))
        if abs(best.get("share") or 0.0) < 0.5:
            break
        chain.append(best)
        nodes = best.get("drivers") or []
    inner = [d for d in chain if d.get("drivers")]
    return (inner or chain or [None])[-1]


def _driver_text(driver: Mapping[str, Any] | None) -> str | None:
    if driver is None:
        return None
    unit = driver.get("unit")
    share = driver.get("share")
    text = f"{driver.get('label') or driver.get('metric')} {number(driver.get('baseline'), unit)} → " \
           f"{number(driver.get('current'), unit)}"
    return text + (f" ({share * 100:.0f} % of the change)" if share is not None else "")


def top_root_cause(explanation: Mapping[str, Any]) -> dict[str, Any] | None:
    """The first root cause (in the explanation's ranking) that moved the metric the way it went; else the first.

    A segment pulling against the change (customers fell, so revenue per customer rose) is a real finding
    but a poor headline for "why did it fall?"."""
    causes = list(explanation.get("root_causes") or [])
    change = explanation.get("change") or 0.0
    along = [c for c in causes if (c.get("contribution") or 0.0) * change > 0]
    return (along or causes or [None])[0]


# --------------------------------------------------------------------------- state


class State:
    """What was sent: ``channel | rule key | period`` → when, in a JSON file replaced atomically."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.sent: dict[str, str] = {}
        if self.path.exists():
            try:
                document = json.loads(self.path.read_text("utf-8"))
                self.sent = dict(document.get("sent", {}))
            except (OSError, ValueError, AttributeError) as exc:
                raise UsageError(error(f"{self.path}: the notification state file is not readable ({exc})",
                                       hint="delete it to start afresh (everything firing now is then sent "
                                            "again)", code="notify-state")) from None

    @staticmethod
    def entry(channel: str, notice: Notice) -> str:
        return f"{channel} | {notice.key} | {notice.period}"

    def was_sent(self, channel: str, notice: Notice) -> bool:
        return self.entry(channel, notice) in self.sent

    def mark(self, channel: str, notice: Notice) -> None:
        self.sent[self.entry(channel, notice)] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")

    def save(self) -> None:
        """Write the state beside the file, flush it to disk, then rename it over the old one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        document = json.dumps({"version": 1, "sent": dict(sorted(self.sent.items()))}, indent=1, ensure_ascii=False)
        fd, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(document + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path``.lock for the time of one run (POSIX; elsewhere, no lock)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{path}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- delivery


class _Retry(Exception):
    """A failure that may pass: try again after the back-off."""

    def __init__(self, message: str, wait: float | None = None):
        super().__init__(message)
        self.wait = wait


def _with_retries(send: Callable[[], None], retries: int, backoff: float, sleep: Callable[[float], None],
                  what: str) -> None:
    for attempt in range(retries + 1):
        try:
            return send()
        except _Retry as exc:
            if attempt == retries:
                raise DeliveryError(f"{what}: {exc} (gave up after {retries + 1} tries)") from None
            wait = min(_MAX_BACKOFF, exc.wait if exc.wait is not None else backoff * 2 ** attempt)
            log.warning("%s: %s; trying again in %.1f s", what, exc, wait)
            sleep(wait)


class DeliveryError(Exception):
    """A notification that could not be delivered."""


def _slack_text(text: str) -> str:
    """Text for Slack: its three control characters escaped (``<@U123>`` in a label must not ping anyone)."""
    return printable(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(notice: Notice) -> dict[str, Any]:
    """A Slack-compatible incoming-webhook message: ``text`` (the fallback) and one mrkdwn section."""
    headline = _slack_text(notice.headline())
    body = "\n".join(f"• {_slack_text(line)}" for line in notice.lines())
    return {"text": headline,
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": f"*{headline}*\n{body}"}}]}


def _post_webhook(settings: WebhookSettings, notice: Notice, timeout: float) -> None:
    payload = slack_payload(notice) if settings.format == "slack" else notice.to_dict()
    request = urllib.request.Request(settings.url, data=json.dumps(payload, ensure_ascii=False).encode("utf-8"),
                                     headers={"Content-Type": "application/json; charset=utf-8",
                                              "User-Agent": "metrictree-notify"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read()
    except urllib.error.HTTPError as exc:
        if exc.code == 429 or exc.code >= 500:
            retry_after = exc.headers.get("Retry-After", "")
            raise _Retry(f"HTTP {exc.code}", float(retry_after) if retry_after.isdigit() else None) from None
        raise DeliveryError(f"webhook refused the message: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise _Retry(str(getattr(exc, "reason", exc))) from None


def email_message(settings: EmailSettings, notes: Sequence[Notice]) -> EmailMessage:
    """One e-mail listing ``notes`` (all of one run)."""
    alerts = sum(1 for n in notes if n.kind == "alert")
    targets = len(notes) - alerts
    trees = ", ".join(dict.fromkeys(n.tree for n in notes))
    periods = ", ".join(dict.fromkeys(n.period for n in notes))
    # Plain words: the header folder of the email package breaks a subject holding "(s)" badly.
    parts = [f"{alerts} alert{'s' if alerts > 1 else ''} fired"] if alerts else []
    parts += [f"{targets} target{'s' if targets > 1 else ''} off plan"] if targets else []
    message = EmailMessage()
    message["Subject"] = f"{settings.subject_prefix} {trees}: {' and '.join(parts)} at {periods}".strip()
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.to)
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="metrictree")
    body = printable("\n\n".join(n.text() for n in notes))
    message.set_content(body + "\n\n-- \nsent by metrictree status --notify\n")
    return message


def _send_email(settings: EmailSettings, notes: Sequence[Notice], timeout: float) -> None:
    message = email_message(settings, notes)
    connect = smtplib.SMTP_SSL if settings.security == "ssl" else smtplib.SMTP
    try:
        with connect(settings.host, settings.port, timeout=timeout) as smtp:
            if settings.security == "starttls":
                smtp.starttls()
            if settings.username:
                smtp.login(settings.username, settings.password or "")
            smtp.send_message(message)
    except smtplib.SMTPResponseException as exc:
        text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else str(exc.smtp_error)
        if 400 <= exc.smtp_code < 500:
            raise _Retry(f"SMTP {exc.smtp_code} {text}") from None
        raise DeliveryError(f"the SMTP server refused the message: {exc.smtp_code} {text}") from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise DeliveryError(f"the SMTP server refused the recipients: {', '.join(exc.recipients)}") from None
    except (smtplib.SMTPException, OSError) as exc:
        raise _Retry(str(exc) or type(exc).__name__) from None


@attrs.frozen
class Report:
    """What one run did.

    Attributes:
        sent: ``(channel, notice)`` delivered now.
        skipped: ``(channel, notice)`` already sent for their period.
        failed: ``(channel, notice, why)`` that could not be delivered (tried again on the next run).
        dry_run: ``(channel, payload text)`` that a real run would send.
    """

    sent: tuple[tuple[str, Notice], ...] = ()
    skipped: tuple[tuple[str, Notice], ...] = ()
    failed: tuple[tuple[str, Notice, str], ...] = ()
    dry_run: tuple[tuple[str, str], ...] = ()

    def summary(self) -> str:
        if self.dry_run:
            return f"notify (dry run): {len(self.dry_run)} message(s) would be sent, {len(self.skipped)} already sent"
        failed = f", {len(self.failed)} failed" if self.failed else ""
        return f"notify: {len(self.sent)} sent, {len(self.skipped)} already sent{failed}"


def notify(config: NotifyConfig, found: Sequence[Notice], sleep: Callable[[float], None] = time.sleep) -> Report:
    """Send each notice not yet sent for its period, on each channel; record what was delivered."""
    channels = [c for c, settings in (("webhook", config.webhook), ("email", config.email)) if settings]
    sent: list[tuple[str, Notice]] = []
    skipped: list[tuple[str, Notice]] = []
    failed: list[tuple[str, Notice, str]] = []
    dry: list[tuple[str, str]] = []
    with _locked(Path(config.state)):
        state = State(config.state)
        for channel in channels:
            fresh = []
            for notice in found:
                if state.was_sent(channel, notice):
                    skipped.append((channel, notice))
                else:
                    fresh.append(notice)
            if not fresh:
                continue
            if config.dry_run:
                dry.extend(_dry(config, channel, fresh))
                continue
            for batch in ([[n] for n in fresh] if channel == "webhook" else [fresh]):
                what = f"{channel} ({', '.join(n.key for n in batch)} at {batch[0].period})"
                if channel == "webhook":
                    send = functools.partial(_post_webhook, config.webhook, batch[0], config.timeout_seconds)
                else:
                    send = functools.partial(_send_email, config.email, batch, config.timeout_seconds)
                try:
                    _with_retries(send, config.retries, config.backoff_seconds, sleep, what)
                except DeliveryError as exc:
                    log.error("not delivered: %s", exc)
                    failed.extend((channel, n, str(exc)) for n in batch)
                    continue
                for n in batch:
                    state.mark(channel, n)
                    sent.append((channel, n))
                state.save()  # after every delivery, so a crash later cannot make it go out twice
    return Report(tuple(sent), tuple(skipped), tuple(failed), tuple(dry))


def _dry(config: NotifyConfig, channel: str, fresh: list[Notice]) -> list[tuple[str, str]]:
    if channel == "webhook":
        return [(f"webhook {_redacted(config.webhook.url)}",
                 json.dumps(slack_payload(n) if config.webhook.format == "slack" else n.to_dict(), ensure_ascii=False,
                            indent=2)) for n in fresh]
    message = email_message(config.email, fresh)
    head = "".join(f"{name}: {message[name]}\n" for name in ("Subject", "From", "To"))
    return [(f"email via {config.email.host}:{config.email.port}", head + "\n" + message.get_content())]


def _redacted(url: str) -> str:
    """A webhook URL without its secret path (Slack's URLs are credentials)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}/…" if parts.path not in ("", "/") else url


def check_and_notify(tree: Tree, data: Mapping[str, Any], config: NotifyConfig, at: str | None = None,
                     params: Mapping[str, Any] | None = None, status: Status | None = None) -> Report:
    """The status of ``tree`` (unless given), its notices, and their delivery."""
    found = status if status is not None else tree.status(data, at=at, params=params)
    return notify(config, notices(tree, found, data, config.send, params))


__all__ = ["CHANNELS", "DeliveryError", "Notice", "NotifyConfig", "Report", "State", "check_and_notify",
           "email_message", "load_config", "main_driver", "notices", "notify", "slack_payload", "top_root_cause"]
