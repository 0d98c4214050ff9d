"""Failure e-mails: what the worker sends when a step fails, and how it is delivered.

Set a receiver and trun mails every step failure, every scheduling failure
(``complete()`` or ``requires()`` raised) and every framework error::

    [email]
    receiver = oncall@example.com, data-team@example.com
    prefix = [prod]

    [smtp]
    host = smtp.example.com
    port = 587
    username = trun
    password = secret

A step adds its own recipients through ``Step.owner_email``. The worker builds
the subject ("Trun: <step> FAILED. Host: <host>") and the body
(:func:`format_step_error`) and calls :func:`send_error_email`; the ``[email]
method`` backend delivers it: ``smtp`` (default, standard library only),
``ses`` and ``sns`` (need ``boto3``) or ``sendgrid`` (needs ``sendgrid``).
To check a set-up from the shell::

    trun TestNotificationsStep --local-scheduler --email-force-send

Hazards:

* Nothing is sent while standard output is a terminal, so running a workflow by
  hand does not mail the team; set ``[email] force_send`` (or pass
  ``--email-force-send``) to send anyway. ``[email] format = none`` turns
  e-mails off entirely, and nothing is sent when there is no recipient.
* Sending is synchronous: a slow SMTP server holds up the worker for up to
  ``[smtp] timeout`` seconds per e-mail.
* SMTP problems (refused connection, timeout, rejected login or recipients) are
  logged, never raised, so a broken mail set-up cannot break a run. The ``ses``,
  ``sns`` and ``sendgrid`` backends raise their errors; the worker logs them.
* Settings are read through the ``email``/``smtp`` :class:`~trun.step.Config`
  classes, whose instances are cached like any step's. Code that changes the
  configuration in-process must clear the cache
  (``trun.step_register.Register.clear_instance_cache()``;
  ``trun.testing.with_config`` does it).
"""
from __future__ import annotations

import base64
import html
import importlib
import logging
import os
import smtplib
import socket
import sys
import traceback as traceback_module
from collections.abc import Iterable, Sequence
from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from typing import Any

from trun import parameter
from trun.parameter import ParameterVisibility
from trun.step import Config, Step

__all__ = [
    "DEFAULT_CLIENT_EMAIL",
    "EmailBackendUnavailable",
    "TestNotificationsStep",
    "email",
    "format_step_error",
    "generate_email",
    "send_email",
    "send_email_sendgrid",
    "send_email_ses",
    "send_email_smtp",
    "send_email_sns",
    "send_error_email",
    "sendgrid",
    "smtp",
    "wrap_traceback",
]

logger = logging.getLogger("trun-interface")

#: The default ``[email] sender``: ``trun-client@<this host's name>``.
DEFAULT_CLIENT_EMAIL = f"trun-client@{socket.gethostname()}"

#: SNS refuses subjects longer than this.
_SNS_MAX_SUBJECT = 100

#: One PNG file path, or several.
ImagesPng = str | os.PathLike[str] | Iterable[str | os.PathLike[str]] | None


class EmailBackendUnavailable(ImportError):
    """The ``[email] method`` in use needs a Python package that is not installed."""


class TestNotificationsStep(Step):
    """A step that always fails, to check that failure e-mails arrive.

    Run it from a script or a cron job (e-mails are not sent when standard
    output is a terminal) or force sending::

        trun TestNotificationsStep --local-scheduler --email-force-send

    With ``--raise-in-complete`` it fails in ``complete()`` instead of ``run()``,
    which exercises the "failed scheduling" e-mail.
    """

    raise_in_complete = parameter.BoolParameter(
        description="Fail in complete() (a scheduling failure) instead of in run()")

    def run(self) -> None:
        raise ValueError("Testing notifications triggering")

    def complete(self) -> bool:
        if self.raise_in_complete:
            raise ValueError("Testing notifications triggering")
        return False


class email(Config):  # lower case: the class name is the [email] section name
    """The ``[email]`` section: who receives failure e-mails, their format and how they are sent."""

    force_send = parameter.BoolParameter(
        default=False, description="Send e-mails even when standard output is a terminal")
    format = parameter.ChoiceParameter(
        default="plain", choices=("plain", "html", "none"),
        config_path={"section": "core", "name": "email-type"},
        description="Format of the e-mail body; 'none' sends no e-mails at all.")
    method = parameter.ChoiceParameter(
        default="smtp", choices=("smtp", "sendgrid", "ses", "sns"),
        config_path={"section": "email", "name": "type"},
        description="How e-mails are delivered.")
    prefix = parameter.Parameter(
        default="", config_path={"section": "core", "name": "email-prefix"},
        description="Text put before the subject of every e-mail, e.g. [prod]")
    receiver = parameter.Parameter(
        default="", config_path={"section": "core", "name": "error-email"},
        description="Comma-separated addresses that receive error e-mails (the topic ARN for method=sns)")
    traceback_max_length = parameter.IntParameter(
        default=5000, description="Longest traceback put in an e-mail, in characters; longer ones are cut")
    sender = parameter.Parameter(
        default=DEFAULT_CLIENT_EMAIL, config_path={"section": "core", "name": "email-sender"},
        description="From address of the e-mails")


class smtp(Config):  # lower case: the class name is the [smtp] section name
    """The ``[smtp]`` section: the mail server used when ``[email] method = smtp``."""

    host = parameter.Parameter(
        default="localhost", config_path={"section": "core", "name": "smtp_host"},
        description="Host name of the SMTP server")
    local_hostname = parameter.OptionalParameter(
        default=None, config_path={"section": "core", "name": "smtp_local_hostname"},
        description="Name this host gives itself in HELO/EHLO (default: its fully qualified name)")
    no_tls = parameter.BoolParameter(
        default=False, config_path={"section": "core", "name": "smtp_without_tls"},
        description="Do not upgrade the connection with STARTTLS even if the server offers it")
    password = parameter.OptionalParameter(
        default=None, config_path={"section": "core", "name": "smtp_password"},
        significant=False, visibility=ParameterVisibility.PRIVATE,
        description="Password for the SMTP login (used together with username)")
    port = parameter.IntParameter(
        default=0, config_path={"section": "core", "name": "smtp_port"},
        description="Port of the SMTP server; 0 means the standard one (25, or 465 with ssl)")
    ssl = parameter.BoolParameter(
        default=False, config_path={"section": "core", "name": "smtp_ssl"},
        description="Connect with SSL/TLS from the start (SMTPS)")
    timeout = parameter.FloatParameter(
        default=10.0, config_path={"section": "core", "name": "smtp_timeout"},
        description="Seconds to wait for the SMTP server before giving up")
    username = parameter.OptionalParameter(
        default=None, config_path={"section": "core", "name": "smtp_login"},
        description="User name for the SMTP login (used together with password)")


class sendgrid(Config):  # lower case: the class name is the [sendgrid] section name
    """The ``[sendgrid]`` section: credentials used when ``[email] method = sendgrid``."""

    apikey = parameter.Parameter(
        config_path={"section": "email", "name": "SENGRID_API_KEY"},
        significant=False, visibility=ParameterVisibility.PRIVATE,
        description="API key for SendGrid")


# -- building messages -------------------------------------------------------------


def _image_paths(images_png: ImagesPng) -> list[str]:
    if images_png is None:
        return []
    if isinstance(images_png, (str, bytes, os.PathLike)):
        return [os.fsdecode(images_png)]
    return [os.fsdecode(path) for path in images_png]


def generate_email(sender: str, subject: str, message: str, recipients: Sequence[str],
                   images_png: ImagesPng = None) -> MIMEMultipart:
    """Build the MIME message: ``message`` as the body, each PNG in ``images_png`` attached.

    The body is ``text/html`` when ``[email] format = html``, else ``text/plain``.
    """
    root = MIMEMultipart("related")
    subtype = "html" if email().format == "html" else "plain"
    root.attach(MIMEText(message, subtype, "utf-8"))
    for path in _image_paths(images_png):
        with open(path, "rb") as image_file:
            image = MIMEImage(image_file.read(), "png")
        image.add_header("Content-Disposition", "attachment", filename=os.path.basename(path))
        root.attach(image)
    root["Subject"] = subject
    root["From"] = sender
    root["To"] = ",".join(recipients)
    return root


def wrap_traceback(traceback: str | BaseException) -> str:
    """Present a traceback for the e-mail body: highlighted HTML when ``[email] format = html``.

    Accepts the formatted text or the exception itself. HTML uses pygments
    when it is installed and falls back to an escaped ``<pre>`` block.
    """
    if isinstance(traceback, BaseException):
        traceback = "".join(traceback_module.format_exception(type(traceback), traceback, traceback.__traceback__))
    if email().format != "html":
        return traceback
    try:
        from pygments import highlight
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonTracebackLexer
    except ImportError:
        return f"<pre>{html.escape(traceback)}</pre>"
    # Inline styles: mail clients drop <style> blocks.
    return highlight(traceback, PythonTracebackLexer(), HtmlFormatter(noclasses=True))


def _truncate(formatted_exception: str, max_length: int) -> str:
    if len(formatted_exception) <= max_length:
        return formatted_exception
    return (f"{formatted_exception[:max(max_length, 0)]}\n"
            f"... Traceback exceeds max length of {max_length} characters and has been truncated "
            f"(raise [email] traceback_max_length to see more).")


_PLAIN_BODY = """\
{headline}

Name: {name}

Parameters:
{params}

Command line:
  {command}

{traceback}
"""

_HTML_BODY = """\
<html>
<body>
<h2>{headline}</h2>

<table style="border-top: 1px solid black; border-bottom: 1px solid black">
<thead>
<tr><th>name</th><td>{name}</td></tr>
</thead>
<tbody>
{param_rows}
</tbody>
</table>

<h2>Command line</h2>
<pre>
{command}
</pre>

<h2>Traceback</h2>
{traceback}
</body>
</html>
"""


def format_step_error(headline: str, step: Step, command: str, formatted_exception: str | None = None) -> str:
    """The body of an error e-mail about ``step``, in the ``[email] format`` (plain or HTML).

    :param headline: summary line, e.g. "A step failed when running."
    :param step: the step the error is about; its family and parameters are listed.
    :param command: the command line of the process, shown as run.
    :param formatted_exception: the traceback text, cut to ``[email] traceback_max_length``.
    """
    config = email()
    traceback_text = ""
    if formatted_exception:
        traceback_text = wrap_traceback(_truncate(formatted_exception, config.traceback_max_length))
    str_params = step.to_str_params()
    if config.format == "html":
        param_rows = "\n".join(f"<tr><th>{html.escape(name)}</th><td>{html.escape(value)}</td></tr>"
                               for name, value in str_params.items())
        return _HTML_BODY.format(headline=html.escape(headline), name=html.escape(step.step_family),
                                 param_rows=param_rows, command=html.escape(command), traceback=traceback_text)
    width = max((len(name) for name in str_params), default=0)
    params = "\n".join(f"  {name:{width}}: {value}" for name, value in str_params.items())
    return _PLAIN_BODY.format(headline=headline, name=step.step_family, params=params, command=command,
                              traceback=traceback_text)


# -- delivery backends ------------------------------------------------------------


def _import_backend_package(module_name: str, pip_name: str, method: str) -> Any:
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise EmailBackendUnavailable(
            f"[email] method = {method} needs the {pip_name} package, which is not installed. "
            f"Install it with `pip install {pip_name}`, or set [email] method = smtp.") from exc


def send_email_smtp(sender: str, subject: str, message: str, recipients: Sequence[str],
                    images_png: ImagesPng = None) -> None:
    """Deliver through the ``[smtp]`` server; problems are logged, not raised.

    Uses SMTPS when ``ssl`` is set, upgrades with STARTTLS when the server
    offers it (unless ``no_tls``), and logs in when both ``username`` and
    ``password`` are set.
    """
    config = smtp()
    kwargs: dict[str, Any] = {"host": config.host, "port": config.port, "local_hostname": config.local_hostname}
    if config.timeout:
        kwargs["timeout"] = config.timeout
    where = f"{config.host}:{config.port or ('465' if config.ssl else '25')}"
    connection: smtplib.SMTP | None = None
    try:
        # smtplib's own errors are OSError subclasses, so this catches refused
        # connections, timeouts, failed logins and rejected recipients alike.
        connection = smtplib.SMTP_SSL(**kwargs) if config.ssl else smtplib.SMTP(**kwargs)
        connection.ehlo_or_helo_if_needed()
        if connection.has_extn("starttls") and not config.no_tls:
            connection.starttls()
            connection.ehlo()
        if config.username and config.password:
            connection.login(config.username, config.password)
        msg = generate_email(sender, subject, message, recipients, images_png)
        connection.sendmail(sender, list(recipients), msg.as_string())
    except OSError as exc:
        logger.error("Not able to send e-mail through the SMTP server %s: %s", where, exc)
    finally:
        if connection is not None:
            try:
                connection.quit()
            except OSError:
                connection.close()


def send_email_ses(sender: str, subject: str, message: str, recipients: Sequence[str],
                   images_png: ImagesPng = None) -> None:
    """Deliver through Amazon SES (``boto3``); credentials and region come from boto3's usual sources."""
    boto3 = _import_backend_package("boto3", "boto3", "ses")
    client = boto3.client("ses")
    msg = generate_email(sender, subject, message, recipients, images_png)
    try:
        response = client.send_raw_email(Source=sender, Destinations=list(recipients),
                                         RawMessage={"Data": msg.as_string()})
    except Exception as exc:
        logger.error("Not able to send e-mail through SES: %s", exc)
        raise
    logger.debug("E-mail sent through SES, MessageId %s", response.get("MessageId"))


def send_email_sns(sender: str, subject: str, message: str, topic_arn: Sequence[str],
                   images_png: ImagesPng = None) -> None:
    """Publish to the Amazon SNS topic whose ARN is the first recipient (``boto3``).

    SNS takes no sender and no attachments; subjects over 100 characters are
    shortened in the middle.
    """
    boto3 = _import_backend_package("boto3", "boto3", "sns")
    if len(subject) > _SNS_MAX_SUBJECT:
        marker = "..."
        head = (_SNS_MAX_SUBJECT - len(marker)) // 2
        tail = _SNS_MAX_SUBJECT - len(marker) - head
        subject = subject[:head] + marker + subject[-tail:]
    response = boto3.client("sns").publish(TopicArn=topic_arn[0], Subject=subject, Message=message)
    logger.debug("Message published to SNS, MessageId %s", response.get("MessageId"))


def send_email_sendgrid(sender: str, subject: str, message: str, recipients: Sequence[str],
                        images_png: ImagesPng = None) -> None:
    """Deliver through SendGrid's API (``sendgrid`` package) with ``[sendgrid] apikey``."""
    sendgrid_lib = _import_backend_package("sendgrid", "sendgrid", "sendgrid")
    helpers = importlib.import_module("sendgrid.helpers.mail")
    mail = helpers.Mail(from_email=sender, to_emails=list(recipients), subject=subject)
    mail.add_content(message, "text/html" if email().format == "html" else "text/plain")
    for path in _image_paths(images_png):
        with open(path, "rb") as image_file:
            encoded = base64.b64encode(image_file.read()).decode("ascii")
        mail.add_attachment(helpers.Attachment(helpers.FileContent(encoded), helpers.FileName(os.path.basename(path)),
                                               helpers.FileType("image/png"), helpers.Disposition("attachment")))
    sendgrid_lib.SendGridAPIClient(sendgrid().apikey).send(mail)


_BACKENDS = {
    "smtp": send_email_smtp,
    "ses": send_email_ses,
    "sns": send_email_sns,
    "sendgrid": send_email_sendgrid,
}


# -- deciding whether and to whom -----------------------------------------------


def _email_disabled_reason() -> str | None:
    config = email()
    if config.format == "none":
        return "[email] format is 'none'"
    if config.force_send:
        return None
    isatty = getattr(sys.stdout, "isatty", None)
    if isatty is not None and isatty():
        return "standard output is a terminal (set [email] force_send to send anyway)"
    return None


def _split_recipients(recipients: Iterable[str | None]) -> list[str]:
    # Entries may themselves be comma-separated lists, as written in trun.cfg.
    addresses: list[str] = []
    for entry in recipients:
        for address in (entry or "").split(","):
            address = address.strip()
            if address and address not in addresses:
                addresses.append(address)
    return addresses


def _prefix(subject: str) -> str:
    prefix = email().prefix
    return f"{prefix} {subject}" if prefix else subject


def send_email(subject: str, message: str, sender: str, recipients: Sequence[str | None] | str | None,
               images_png: ImagesPng = None, *, image_png: ImagesPng = None) -> None:
    """Send an e-mail through the ``[email] method`` backend, unless sending is off.

    Nothing is sent when there are no recipients, when ``[email] format`` is
    ``none``, or when standard output is a terminal and ``[email] force_send``
    is not set. ``[email] prefix`` is put before the subject; recipients may be
    comma-separated lists. ``images_png`` (one path or several; ``image_png``
    is the older name) are attached.
    """
    if isinstance(recipients, str):
        recipients = [recipients]
    addresses = _split_recipients(recipients or [])
    if not addresses:
        return
    reason = _email_disabled_reason()
    if reason:
        logger.info("Not sending e-mail to %r because %s", addresses, reason)
        return
    images = _image_paths(images_png) + _image_paths(image_png)
    logger.info("Sending e-mail to %r", addresses)
    _BACKENDS[email().method](sender, _prefix(subject), message, addresses, images or None)


def _email_recipients(additional_recipients: str | Sequence[str] | None = None) -> list[str]:
    receiver = email().receiver
    recipients = [receiver] if receiver else []
    if isinstance(additional_recipients, str):
        recipients.append(additional_recipients)
    elif additional_recipients:
        recipients.extend(additional_recipients)
    return recipients


def send_error_email(subject: str, message: str,
                     additional_recipients: str | Sequence[str] | None = None) -> None:
    """Send an error e-mail to ``[email] receiver`` plus ``additional_recipients`` (e.g. a step's owners).

    The worker calls this on failures; see :func:`send_email` for when nothing is sent.
    """
    send_email(subject=subject, message=message, sender=email().sender,
               recipients=_email_recipients(additional_recipients))
