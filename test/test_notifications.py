"""Tests of trun.notifications: failure e-mails, delivered to a real SMTP server on 127.0.0.1."""
from __future__ import annotations

import contextlib
import email as email_lib
import email.policy
import io
import logging
import os
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import trun
import trun.notifications
from trun.testing import with_config

aiosmtpd_controller = pytest.importorskip("aiosmtpd.controller")
aiosmtpd_smtp = pytest.importorskip("aiosmtpd.smtp")

REPO_ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Inbox:
    """An aiosmtpd handler that keeps every message it is given (and every login)."""

    def __init__(self) -> None:
        self.envelopes: list = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return aiosmtpd_smtp.AuthResult(success=True)

    @property
    def messages(self) -> list[email_lib.message.EmailMessage]:
        return [email_lib.message_from_bytes(e.content, policy=email.policy.default) for e in self.envelopes]

    def only_message(self) -> email_lib.message.EmailMessage:
        assert len(self.envelopes) == 1, f"expected one e-mail, got {len(self.envelopes)}"
        return self.messages[0]


@pytest.fixture
def smtp_server():
    """A real SMTP server on a free loopback port; ``.inbox`` holds what it received."""
    inbox = Inbox()
    port = _free_port()
    controller = aiosmtpd_controller.Controller(
        inbox, hostname="127.0.0.1", port=port,
        authenticator=inbox.authenticate, auth_require_tls=False)
    controller.start()
    controller.inbox = inbox
    controller.port = port
    yield controller
    controller.stop()


def mail_config(server, email_options=None, smtp_options=None) -> with_config:
    """Configuration pointing [smtp] at ``server`` with force_send on, plus the given overrides."""
    return with_config({
        "email": {"force_send": "true", **(email_options or {})},
        "smtp": {"host": "127.0.0.1", "port": str(server.port), "timeout": "5", **(smtp_options or {})},
    })


def body_part(message: email_lib.message.EmailMessage) -> email_lib.message.EmailMessage:
    return message.get_body(preferencelist=("plain", "html"))


def body_of(message: email_lib.message.EmailMessage) -> str:
    return body_part(message).get_content()


# pytest's output capture re-assigns sys.stdout at the start of each test phase,
# so standard output is swapped inside the test body, not in a fixture.
@contextlib.contextmanager
def stdout_to_plain_stream():
    """Standard output redirected to a plain stream, as under cron."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


@contextlib.contextmanager
def stdout_to_terminal():
    """Standard output connected to a real pseudo-terminal."""
    if not hasattr(os, "openpty"):
        pytest.skip("needs a pseudo-terminal (POSIX)")
    main_fd, terminal_fd = os.openpty()
    try:
        with os.fdopen(terminal_fd, "w") as terminal, contextlib.redirect_stdout(terminal):
            assert sys.stdout.isatty()
            yield
    finally:
        os.close(main_fd)


def make_failing_step_class(name: str, owners=None) -> type:
    """A step class whose run() raises; a fresh class per test keeps the registry clean."""
    def run(self):
        raise RuntimeError("kaboom from run")

    def complete(self):
        return False

    return type(name, (trun.Step,), {"value": trun.IntParameter(default=1), "run": run, "complete": complete,
                                     "owner_email": owners})


# -- configuration classes ---------------------------------------------------------


def test_email_section_defaults_match_luigi_renamed():
    config = trun.notifications.email()
    assert config.force_send is False
    assert config.format == "plain"
    assert config.method == "smtp"
    assert config.prefix == ""
    assert config.receiver == ""
    assert config.traceback_max_length == 5000
    assert config.sender == f"trun-client@{socket.gethostname()}"


def test_smtp_section_defaults_match_luigi():
    config = trun.notifications.smtp()
    assert (config.host, config.port, config.ssl, config.no_tls) == ("localhost", 0, False, False)
    assert (config.username, config.password, config.local_hostname) == (None, None, None)
    assert config.timeout == 10.0


def test_deprecated_core_error_email_still_sets_receiver():
    with with_config({"core": {"error-email": "old@example.com"}}):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            receiver = trun.notifications.email().receiver
    assert receiver == "old@example.com"
    assert any(issubclass(w.category, DeprecationWarning) and "[email] receiver" in str(w.message) for w in caught)


def test_email_format_rejects_unknown_value_and_suggests_a_choice():
    with with_config({"email": {"format": "htm"}}):
        with pytest.raises(trun.parameter.ParameterException) as excinfo:
            trun.notifications.email()
    message = str(excinfo.value)
    assert "format" in message and "html" in message


# -- sending through SMTP -----------------------------------------------------------


def test_error_email_reaches_receiver_with_sender_subject_and_plain_body(smtp_server):
    with mail_config(smtp_server, {"receiver": "oncall@example.com", "sender": "trun@example.com"}):
        trun.notifications.send_error_email("Trun: X FAILED. Host: h", "the body")
    envelope = smtp_server.inbox.envelopes[0]
    assert envelope.mail_from == "trun@example.com"
    assert envelope.rcpt_tos == ["oncall@example.com"]
    message = smtp_server.inbox.only_message()
    assert message["Subject"] == "Trun: X FAILED. Host: h"
    assert message["From"] == "trun@example.com"
    assert message["To"] == "oncall@example.com"
    assert body_part(message).get_content_type() == "text/plain"
    assert body_of(message).strip() == "the body"


def test_html_format_sends_html_body(smtp_server):
    with mail_config(smtp_server, {"receiver": "oncall@example.com", "format": "html"}):
        trun.notifications.send_error_email("subject", "<h2>hello</h2>")
    message = smtp_server.inbox.only_message()
    assert body_part(message).get_content_type() == "text/html"
    assert "<h2>hello</h2>" in body_of(message)


def test_additional_recipients_are_added_to_receiver_as_string_or_list(smtp_server):
    with mail_config(smtp_server, {"receiver": "oncall@example.com"}):
        trun.notifications.send_error_email("s1", "m", "owner@example.com")
        trun.notifications.send_error_email("s2", "m", ["a@example.com", "b@example.com"])
    first, second = smtp_server.inbox.envelopes
    assert first.rcpt_tos == ["oncall@example.com", "owner@example.com"]
    assert second.rcpt_tos == ["oncall@example.com", "a@example.com", "b@example.com"]


def test_comma_separated_recipients_are_split_and_deduplicated(smtp_server):
    with mail_config(smtp_server, {"receiver": "a@example.com, b@example.com"}):
        trun.notifications.send_error_email("subject", "m", "b@example.com,c@example.com")
    assert smtp_server.inbox.envelopes[0].rcpt_tos == ["a@example.com", "b@example.com", "c@example.com"]


def test_prefix_is_put_before_subject(smtp_server):
    with mail_config(smtp_server, {"receiver": "oncall@example.com", "prefix": "[prod]"}):
        trun.notifications.send_error_email("Trun: X FAILED", "m")
    assert smtp_server.inbox.only_message()["Subject"] == "[prod] Trun: X FAILED"


def test_nothing_sent_without_recipients(smtp_server):
    with mail_config(smtp_server):
        trun.notifications.send_error_email("subject", "m")
        trun.notifications.send_email("subject", "m", "me@example.com", [None])
        trun.notifications.send_email("subject", "m", "me@example.com", " , ")
    assert smtp_server.inbox.envelopes == []


def test_nothing_sent_when_format_is_none_even_with_force_send(smtp_server, caplog):
    caplog.set_level(logging.INFO, logger="trun-interface")
    with mail_config(smtp_server, {"receiver": "oncall@example.com", "format": "none"}):
        trun.notifications.send_error_email("subject", "m")
    assert smtp_server.inbox.envelopes == []
    assert "format is 'none'" in caplog.text


def test_nothing_sent_when_stdout_is_a_terminal(smtp_server, caplog):
    caplog.set_level(logging.INFO, logger="trun-interface")
    with mail_config(smtp_server, {"receiver": "oncall@example.com", "force_send": "false"}):
        with stdout_to_terminal():
            trun.notifications.send_error_email("subject", "m")
    assert smtp_server.inbox.envelopes == []
    assert "terminal" in caplog.text


def test_force_send_sends_even_when_stdout_is_a_terminal(smtp_server):
    with mail_config(smtp_server, {"receiver": "oncall@example.com", "force_send": "true"}):
        with stdout_to_terminal():
            trun.notifications.send_error_email("subject", "m")
    assert len(smtp_server.inbox.envelopes) == 1


def test_sent_without_force_send_when_stdout_is_not_a_terminal(smtp_server):
    with mail_config(smtp_server, {"receiver": "oncall@example.com", "force_send": "false"}):
        with stdout_to_plain_stream():
            trun.notifications.send_error_email("subject", "m")
    assert len(smtp_server.inbox.envelopes) == 1


def test_unreachable_smtp_server_is_logged_not_raised(caplog):
    closed_port = _free_port()
    with with_config({"email": {"receiver": "oncall@example.com", "force_send": "true"},
                      "smtp": {"host": "127.0.0.1", "port": str(closed_port), "timeout": "2"}}):
        trun.notifications.send_error_email("subject", "m")
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and f"127.0.0.1:{closed_port}" in errors[0].getMessage()


def test_smtp_login_uses_username_and_password(smtp_server):
    with mail_config(smtp_server, {"receiver": "oncall@example.com"},
                     {"username": "trun-user", "password": "s3cret"}):
        trun.notifications.send_error_email("subject", "m")
    assert smtp_server.inbox.logins == [("trun-user", "s3cret")]
    assert len(smtp_server.inbox.envelopes) == 1


def test_smtp_does_not_log_in_with_username_alone(smtp_server):
    with mail_config(smtp_server, {"receiver": "oncall@example.com"}, {"username": "trun-user"}):
        trun.notifications.send_error_email("subject", "m")
    assert smtp_server.inbox.logins == []
    assert len(smtp_server.inbox.envelopes) == 1


def test_png_images_are_attached(smtp_server, tmp_path):
    image = tmp_path / "graph.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\nfake-image-data")
    with mail_config(smtp_server):
        trun.notifications.send_email("subject", "m", "me@example.com", ["you@example.com"], str(image))
    attachments = list(smtp_server.inbox.only_message().iter_attachments())
    assert [a.get_filename() for a in attachments] == ["graph.png"]
    assert attachments[0].get_content_type() == "image/png"
    assert attachments[0].get_content() == image.read_bytes()


# -- message bodies ------------------------------------------------------------------


def test_plain_body_has_headline_family_aligned_params_command_and_traceback():
    class NotifyPlainBody(trun.Step):
        a = trun.Parameter()
        longer_name = trun.IntParameter()

    step = NotifyPlainBody(a="x", longer_name=3)
    body = trun.notifications.format_step_error("Something broke", step, "trun NotifyPlainBody", "Traceback: boom")
    assert body.startswith("Something broke\n\nName: NotifyPlainBody\n")
    assert "Parameters:\n  a          : x\n  longer_name: 3\n" in body
    assert "Command line:\n  trun NotifyPlainBody\n" in body
    assert body.rstrip().endswith("Traceback: boom")


def test_body_leaves_out_private_parameters():
    class NotifyPrivateParam(trun.Step):
        token = trun.Parameter(visibility=trun.ParameterVisibility.PRIVATE)

    body = trun.notifications.format_step_error("h", NotifyPrivateParam(token="secret-token"), "cmd")
    assert "secret-token" not in body


def test_html_body_escapes_values_and_tabulates_params():
    class NotifyHtmlBody(trun.Step):
        query = trun.Parameter()

    with with_config({"email": {"format": "html"}}):
        body = trun.notifications.format_step_error("<b>bad</b>", NotifyHtmlBody(query="a<b"), "trun & co", "tb")
    assert "<h2>&lt;b&gt;bad&lt;/b&gt;</h2>" in body
    assert "<tr><th>name</th><td>NotifyHtmlBody</td></tr>" in body
    assert "<tr><th>query</th><td>a&lt;b</td></tr>" in body
    assert "trun &amp; co" in body


def test_html_traceback_is_highlighted_with_pygments():
    pytest.importorskip("pygments")
    with with_config({"email": {"format": "html"}}):
        wrapped = trun.notifications.wrap_traceback('Traceback (most recent call last):\nValueError: "<x>"\n')
    assert "style=" in wrapped and "<pre" in wrapped
    assert "<x>" not in wrapped


def test_html_traceback_without_pygments_is_escaped_pre(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygments", None)  # makes `import pygments` fail
    with with_config({"email": {"format": "html"}}):
        wrapped = trun.notifications.wrap_traceback("ValueError: <x>")
    assert wrapped == "<pre>ValueError: &lt;x&gt;</pre>"


def test_plain_traceback_is_left_as_is():
    assert trun.notifications.wrap_traceback("ValueError: <x>") == "ValueError: <x>"


def test_wrap_traceback_accepts_an_exception():
    try:
        raise KeyError("missing-key")
    except KeyError as exc:
        wrapped = trun.notifications.wrap_traceback(exc)
    assert "Traceback (most recent call last)" in wrapped and "missing-key" in wrapped


def test_long_traceback_is_truncated_with_a_note():
    class NotifyTruncate(trun.Step):
        pass

    with with_config({"email": {"traceback_max_length": "10"}}):
        body = trun.notifications.format_step_error("h", NotifyTruncate(), "cmd", "0123456789ABCDEF")
    assert "0123456789\n" in body and "ABCDEF" not in body
    assert "truncated" in body and "traceback_max_length" in body


# -- other backends --------------------------------------------------------------------


def test_sendgrid_without_package_names_what_to_install(smtp_server, monkeypatch):
    monkeypatch.setitem(sys.modules, "sendgrid", None)
    with mail_config(smtp_server, {"receiver": "oncall@example.com", "method": "sendgrid"}):
        with pytest.raises(trun.notifications.EmailBackendUnavailable, match="pip install sendgrid"):
            trun.notifications.send_error_email("subject", "m")


def test_ses_without_boto3_names_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "boto3", None)
    with with_config({"email": {"receiver": "oncall@example.com", "method": "ses", "force_send": "true"}}):
        with pytest.raises(ImportError, match="pip install boto3"):
            trun.notifications.send_error_email("subject", "m")


@pytest.fixture
def fake_aws(monkeypatch):
    """moto's in-memory AWS, with dummy credentials so nothing can reach the real one."""
    moto = pytest.importorskip("moto")
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(name, value)
    with moto.mock_aws():
        yield


def test_ses_sends_the_raw_message(fake_aws):
    import boto3
    ses = boto3.client("ses")
    ses.verify_email_identity(EmailAddress="trun@example.com")
    with with_config({"email": {"receiver": "oncall@example.com", "method": "ses", "force_send": "true",
                                "sender": "trun@example.com"}}):
        trun.notifications.send_error_email("Trun: X FAILED", "m")
    # moto keeps what SES accepted on its backend (its documented way to inspect sent mail).
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends
    [sent] = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    assert sent.source == "trun@example.com"
    assert "oncall@example.com" in sent.destinations
    assert email_lib.message_from_string(sent.raw_data)["Subject"] == "Trun: X FAILED"


def test_sns_publishes_to_topic_with_subject_cut_to_100_chars(fake_aws):
    import json

    import boto3
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic_arn = sns.create_topic(Name="trun-failures")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn)
    subject = "S" * 60 + "E" * 60
    with with_config({"email": {"receiver": topic_arn, "method": "sns", "force_send": "true"}}):
        trun.notifications.send_error_email(subject, "the body")
    [received] = sqs.receive_message(QueueUrl=queue_url)["Messages"]
    notification = json.loads(received["Body"])
    assert notification["Message"] == "the body"
    assert len(notification["Subject"]) == 100
    assert notification["Subject"].startswith("SSS") and "..." in notification["Subject"]
    assert notification["Subject"].endswith("EEE")


# -- from the worker, end to end ---------------------------------------------------------


def test_failing_step_run_by_build_sends_failed_email_to_receiver_and_owner(smtp_server):
    step_cls = make_failing_step_class("NotifyEndToEndFails", owners="owner@example.com")
    with mail_config(smtp_server, {"receiver": "oncall@example.com"}):
        assert trun.build([step_cls(value=7)], local_scheduler=True) is False
    envelope = smtp_server.inbox.envelopes[0]
    assert envelope.rcpt_tos == ["oncall@example.com", "owner@example.com"]
    message = smtp_server.inbox.only_message()
    assert message["Subject"] == f"Trun: NotifyEndToEndFails(value=7) FAILED. Host: {socket.gethostname()}"
    body = body_of(message)
    assert "Name: NotifyEndToEndFails" in body
    assert "value: 7" in body
    assert "RuntimeError: kaboom from run" in body


def test_error_in_complete_sends_failed_scheduling_email(smtp_server):
    step = trun.notifications.TestNotificationsStep(raise_in_complete=True)
    with mail_config(smtp_server, {"receiver": "oncall@example.com"}):
        assert trun.build([step], local_scheduler=True) is False
    subject = smtp_server.inbox.only_message()["Subject"]
    assert subject == f"Trun: {step} failed scheduling. Host: {socket.gethostname()}"


def test_worker_sends_nothing_when_send_failure_email_is_off(smtp_server):
    step_cls = make_failing_step_class("NotifyEndToEndQuiet")
    with mail_config(smtp_server, {"receiver": "oncall@example.com"}):
        with with_config({"worker": {"send_failure_email": "false"}}):
            trun.build([step_cls()], local_scheduler=True)
    assert smtp_server.inbox.envelopes == []


def _run_test_notifications_step(server, tmp_path, *extra_args: str) -> subprocess.CompletedProcess:
    config_file = tmp_path / "trun.cfg"
    config_file.write_text(f"[email]\nreceiver = oncall@example.com\n"
                           f"[smtp]\nhost = 127.0.0.1\nport = {server.port}\n")
    env = dict(os.environ, TRUN_CONFIG_PATH=str(config_file),
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])))
    return subprocess.run(
        [sys.executable, "-m", "trun", *extra_args, "TestNotificationsStep", "--local-scheduler",
         "--email-force-send", "--no-lock"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)


def test_test_notifications_step_from_command_line_sends_failed_email(smtp_server, tmp_path):
    result = _run_test_notifications_step(smtp_server, tmp_path, "--module", "trun.notifications")
    message = smtp_server.inbox.only_message()
    assert "TestNotificationsStep(raise_in_complete=False) FAILED" in message["Subject"], result.stderr
    assert "ValueError: Testing notifications triggering" in body_of(message)


def test_test_notifications_step_is_found_without_module_flag(smtp_server, tmp_path):
    result = _run_test_notifications_step(smtp_server, tmp_path)
    assert len(smtp_server.inbox.envelopes) == 1, result.stderr
