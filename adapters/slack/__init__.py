"""Emcee on Slack: slack-bolt's AsyncApp (Socket Mode or HTTP mode), Block Kit cards, and the app manifest."""

from adapters.slack.adapter import SlackAdapter, SlackSendError

__all__ = ["SlackAdapter", "SlackSendError"]
