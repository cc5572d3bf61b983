"""Notifications received by real servers on loopback: an HTTP server (http.server in a thread) standing in for
a Slack-compatible webhook, and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import metrictree
from metrictree import notifying
from metrictree.sample import sample_data

ROOT = Path(__file__).resolve().parents[2]


class Webhook:
    """A loopback HTTP server recording each POSTed JSON body; answers with the queued statuses, then 200."""

    def __init__(self):
        self.received: list[dict] = []
        self.statuses: list[int] = []
        self.times: list[float] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.times.append(time.monotonic())
                status = hook.statuses.pop(0) if hook.statuses else 200
                if status == 200:
                    hook.received.append(json.loads(body))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.timeout = 5
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/T000/B000/secret"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def webhook():
    with Webhook() as hook:
        yield hook


@pytest.fixture(scope="module")
def crm():
    return metrictree.load(ROOT / "trees" / "crm_ltv.tree"), sample_data()


def expected_cause(tree, data, metric: str) -> str:
    """How the message names the top root cause of ``metric``'s move into 2026-10: label, slice, contribution."""
    found = tree.explain(data, metric, current="2026-10", top=5).to_dict()
    cause = notifying.top_root_cause(found)
    where = " & ".join(f"{k} = {v}" for k, v in cause["where"].items())
    return f"{tree.metrics[cause['metric']].title} in {where}: "


def write_config(folder: Path, text: str, retries: int = 3) -> Path:
    path = folder / "notify.toml"
    path.write_text(f'state = "state/notify.json"\nretries = {retries}\nbackoff_seconds = 0.05\ntimeout_seconds = 5\n'
                    + text, "utf-8")
    return path


def test_each_fired_alert_and_off_track_target_reaches_the_webhook_once_per_period(tmp_path, webhook, crm):
    tree, data = crm
    config = notifying.load_config(write_config(tmp_path, f'[webhook]\nurl = "{webhook.url}"\n'))

    first = notifying.check_and_notify(tree, data, config, at="2026-10")
    assert len(first.sent) == 3 and not first.failed
    texts = [m["text"] for m in webhook.received]
    assert texts == ["WARNING · Why did LTV move? · More than 40 % of last month's paying customers did not come back "
                     "(2026-10)",
                     "CRITICAL · Why did LTV move? · LTV fell by more than 10 % in a month (2026-10)",
                     "WARNING · Why did LTV move? · Open rate ≥ 30.0% (2026-10)"]
    ltv = webhook.received[1]["blocks"][0]["text"]["text"]
    assert "alert fired: change(ltv) &lt; -10%" in ltv  # Slack's <, > and & escaped
    assert "value −27.2% · threshold −10.0% · gap −17.22 pp" in ltv
    assert f"top root cause: {expected_cause(tree, data, 'ltv')}".replace("&", "&amp;") in ltv
    target = webhook.received[2]["blocks"][0]["text"]["text"]
    assert "value 19.7% · plan now 28.9% · gap +10.27 pp · goal 30.0%" in target

    again = notifying.check_and_notify(tree, data, config, at="2026-10")
    assert (len(again.sent), len(again.skipped)) == (0, 3) and len(webhook.received) == 3

    # A new period is news again: the ltv alert and the open-rate target are sent for 2026-09 too.
    earlier = notifying.check_and_notify(tree, data, config, at="2026-09")
    assert {n.period for _, n in earlier.sent} == {"2026-09"}
    assert len(webhook.received) == 3 + len(earlier.sent)

    state = json.loads((tmp_path / "state" / "notify.json").read_text())
    assert len(state["sent"]) == 3 + len(earlier.sent)
    assert "webhook | alert crm_ltv: change(ltv) < -10% | 2026-10" in state["sent"]
    assert [p.name for p in (tmp_path / "state").iterdir() if p.suffix == ".tmp"] == []


def test_transient_failures_are_retried_with_back_off(tmp_path, webhook, crm):
    tree, data = crm
    webhook.statuses = [503, 503]
    config = notifying.load_config(write_config(tmp_path, f'send = ["alerts"]\n[webhook]\nurl = "{webhook.url}"\n'))
    found = notifying.notices(tree, tree.status(data), data, ["alerts"])[:1]
    report = notifying.notify(config, found)
    assert len(report.sent) == 1 and len(webhook.received) == 1
    gaps = [b - a for a, b in zip(webhook.times, webhook.times[1:], strict=False)]
    assert len(gaps) == 2 and gaps[0] >= 0.05 and gaps[1] >= 0.1  # 0.05 s, then doubled


def test_a_permanent_refusal_is_reported_and_tried_again_next_run(tmp_path, webhook, crm):
    tree, data = crm
    webhook.statuses = [400]
    config = notifying.load_config(write_config(tmp_path, f'[webhook]\nurl = "{webhook.url}"\n'))
    found = notifying.notices(tree, tree.status(data), data)[:1]
    report = notifying.notify(config, found)
    assert not report.sent and "HTTP 400" in report.failed[0][2] and len(webhook.times) == 1  # no retry
    assert len(notifying.notify(config, found).sent) == 1  # not recorded as sent, so it goes out now


def test_gives_up_after_the_retries(tmp_path, webhook, crm):
    tree, data = crm
    webhook.statuses = [503] * 10
    config = notifying.load_config(write_config(tmp_path, f'[webhook]\nurl = "{webhook.url}"\n', retries=2))
    found = notifying.notices(tree, tree.status(data), data, top_root_cause=False)[:1]
    report = notifying.notify(config, found)
    assert "gave up after 3 tries" in report.failed[0][2] and len(webhook.times) == 3


def test_dry_run_sends_and_records_nothing(tmp_path, webhook, servers):
    config = write_config(tmp_path, f'[webhook]\nurl = "{webhook.url}"\n')
    done = subprocess.run(servers.command("status", "crm_ltv", "--sample", "--notify", str(config), "--dry-run"),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "would send to webhook http://127.0.0.1:" in done.stderr and "/hooks/" not in done.stderr
    assert '"text": "CRITICAL · Why did LTV move? · LTV fell by more than 10 % in a month (2026-10)"' in done.stderr
    assert "notify (dry run): 3 message(s) would be sent" in done.stderr
    assert webhook.times == [] and not (tmp_path / "state" / "notify.json").exists()


def test_status_notify_on_the_command_line(tmp_path, webhook, servers):
    config = write_config(tmp_path, f'[webhook]\nurl = "{webhook.url}"\n')
    command = servers.command("status", "crm_ltv", "--sample", "--notify", str(config), "--fail-on-alert")
    first = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert first.returncode == 3 and "notify: 3 sent, 0 already sent" in first.stderr
    second = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert "notify: 0 sent, 3 already sent" in second.stderr and len(webhook.received) == 3

    webhook.statuses = [400] * 5
    (tmp_path / "state" / "notify.json").unlink()
    failed = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 4 and "not delivered to webhook" in failed.stderr
    assert "Traceback" not in failed.stderr


def test_config_mistakes_are_usage_errors(tmp_path):
    with pytest.raises(metrictree.UsageError, match="no channel to send to"):
        notifying.load_config(write_config(tmp_path, ""))
    with pytest.raises(metrictree.UsageError, match="unknown key 'ulr' in webhook") as caught:
        notifying.load_config(write_config(tmp_path, '[webhook]\nulr = "http://x"\n'))
    assert caught.value.diagnostics[0].hint == "did you mean 'url'?"
    with pytest.raises(metrictree.UsageError, match="SLACK_HOOK_FOR_TESTS .* is not set"):
        notifying.load_config(write_config(tmp_path, '[webhook]\nurl_env = "SLACK_HOOK_FOR_TESTS"\n'))


# --------------------------------------------------------------------------- e-mail


@pytest.fixture
def inbox(servers):
    pytest.importorskip("aiosmtpd", reason="aiosmtpd is not installed: pip install aiosmtpd")
    from aiosmtpd.controller import Controller
    from email import message_from_bytes, policy

    class Inbox:
        def __init__(self):
            self.messages = []
            self.refuse: list[str] = []

        async def handle_DATA(self, server, session, envelope):
            if self.refuse:
                return self.refuse.pop(0)
            self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=policy.default)))
            return "250 OK"

    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=servers.free_port())
    controller.start()
    try:
        yield handler, controller.port
    finally:
        controller.stop()


def test_email_lists_the_new_notices_once(tmp_path, inbox, crm):
    handler, port = inbox
    tree, data = crm
    config = notifying.load_config(write_config(tmp_path, f'[email]\nhost = "127.0.0.1"\nport = {port}\n'
                                                'security = "none"\nfrom = "metrictree <kpi@example.com>"\n'
                                                'to = ["crm@example.com", "lead@example.com"]\n'))
    report = notifying.check_and_notify(tree, data, config, at="2026-10")
    assert len(report.sent) == 3
    [(recipients, message)] = handler.messages
    assert recipients == ["crm@example.com", "lead@example.com"]
    assert message["Subject"] == "[metrictree] crm_ltv: 2 alerts fired and 1 target off plan at 2026-10"
    body = message.get_content()
    assert "value −27.2% · threshold −10.0% · gap −17.22 pp" in body
    assert f"top root cause: {expected_cause(tree, data, 'ltv')}" in body
    again = notifying.check_and_notify(tree, data, config, at="2026-10")
    assert not again.sent and len(again.skipped) == 3 and len(handler.messages) == 1


def test_email_temporary_refusal_is_retried(tmp_path, inbox, crm):
    handler, port = inbox
    handler.refuse = ["451 4.3.0 try again later"]
    tree, data = crm
    config = notifying.load_config(write_config(tmp_path, f'[email]\nhost = "127.0.0.1"\nport = {port}\n'
                                                'security = "none"\nfrom = "kpi@example.com"\nto = "crm@example.com"\n'))
    found = notifying.notices(tree, tree.status(data), data, top_root_cause=False)
    report = notifying.notify(config, found)
    assert len(report.sent) == 3 and len(handler.messages) == 1

    handler.refuse = ["554 5.7.1 rejected"]
    (tmp_path / "state" / "notify.json").unlink()
    refused = notifying.notify(config, found)
    assert not refused.sent and "refused the message: 554" in refused.failed[0][2]


# --------------------------------------------------------------------------- serve on a schedule


def test_serve_notifies_on_a_schedule(shop, servers, webhook):
    pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install '.[serve]'")
    config = write_config(shop, f'[webhook]\nurl = "{webhook.url}"\n')
    with servers.http(shop / "metrictree.toml", {}, "--notify", str(config), "--every", "1h") as (base, log):
        deadline = time.monotonic() + 90
        while len(webhook.received) < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
    assert len(webhook.received) == 3, log.read_text()
    assert "crm_ltv: notify: 3 sent, 0 already sent" in log.read_text()


def test_the_top_root_cause_is_one_that_moved_the_metric_the_way_it_went():
    against = {"metric": "customers", "where": {"segment": "regular"}, "contribution": 2710.0}
    along = {"metric": "aov", "where": {"region": "North"}, "contribution": -426.0}
    assert notifying.top_root_cause({"change": -3627.0, "root_causes": [against, along]}) == along
    assert notifying.top_root_cause({"change": -3627.0, "root_causes": [against]}) == against
    assert notifying.top_root_cause({"change": 0.0, "root_causes": []}) is None


def test_slack_messages_cannot_ping_or_link_from_tree_text(crm):
    import attrs

    tree, data = crm
    [notice, *_] = notifying.notices(tree, tree.status(data), data, top_root_cause=False)
    payload = notifying.slack_payload(attrs.evolve(notice, title="<!channel> churn & <http://evil|click>"))
    assert "<" not in payload["text"] and "&lt;!channel&gt; churn &amp; &lt;http://evil|click&gt;" in payload["text"]
    assert "<!channel>" not in payload["blocks"][0]["text"]["text"]
