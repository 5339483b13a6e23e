"""Alerts: always a log line; also a webhook (Slack-compatible) or the stack's alerter when configured.

Alerting is notification only: a broken webhook is logged and never fails the run it reports on.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request
from urllib.parse import urlsplit

logger = logging.getLogger("mlops_platform.alerts")
WEBHOOK_TIMEOUT_SECONDS = 5.0


def webhook_url_problem(url: str) -> str | None:
    """Why ``url`` cannot be an alert webhook, or None (pure): an https URL with a host (http
    only to a loopback address). Day-one review: `hooks.slack.com/x` failed only when an alert
    fired, as a failed hook with "unknown url type"."""
    parts = urlsplit(url)
    loopback = parts.hostname in ("127.0.0.1", "localhost", "::1")
    if not parts.hostname or parts.scheme not in ("https", "http") or url != url.strip():
        return f"{url!r} is not an https URL with a host"
    if parts.scheme == "http" and not loopback:
        return f"{url!r} is plain http to another machine; alerts name patients' models: use https"
    return None


def send_alert(message: str, webhook_env: str | None) -> list[str]:
    """Send `message` through every configured channel; returns the channels that delivered."""
    logger.error("ALERT: %s", message)
    delivered = ["log"]
    url = os.environ.get(webhook_env) if webhook_env else None
    if url and (problem := webhook_url_problem(url)):
        logger.warning(
            "The alert webhook in %s is not used: %s. The alert is in the log; fix the variable "
            "(`mlops check` names it).",
            webhook_env,
            problem,
        )
        url = None
    if url:
        request = urllib.request.Request(
            url,
            data=json.dumps({"text": message}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS):
                delivered.append("webhook")
        except (OSError, ValueError) as error:
            logger.warning(
                "Alert webhook from %s failed (%s); the alert is in the log.", webhook_env, error
            )
    try:
        from zenml.client import Client

        alerter = Client().active_stack.alerter
    except Exception as error:
        logger.warning("Could not look up the stack's alerter: %s", error)
        alerter = None
    if alerter is not None:
        try:
            alerter.post(message)
            delivered.append("stack-alerter")
        except Exception as error:
            logger.warning("The stack's alerter failed (%s); the alert is in the log.", error)
    return delivered
