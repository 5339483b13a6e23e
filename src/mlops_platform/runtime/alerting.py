"""Alerts: always a log line; also a webhook (Slack-compatible) or the stack's alerter when configured.

Alerting is notification only: a broken webhook is logged and never fails the run it reports on.
"""

from __future__ import annotations

import json
import logging
import os
import urllib.request

logger = logging.getLogger("mlops_platform.alerts")
WEBHOOK_TIMEOUT_SECONDS = 5.0


def send_alert(message: str, webhook_env: str | None) -> list[str]:
    """Send `message` through every configured channel; returns the channels that delivered."""
    logger.error("ALERT: %s", message)
    delivered = ["log"]
    url = os.environ.get(webhook_env) if webhook_env else None
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
        except OSError as error:
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
