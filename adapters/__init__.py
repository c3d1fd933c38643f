"""Adapters carry the core's messages to chat platforms and bring members' commands back."""
