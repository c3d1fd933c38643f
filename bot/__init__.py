"""Emcee core: event state, commands and messages, free of any chat platform."""
