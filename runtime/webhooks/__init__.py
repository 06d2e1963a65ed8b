"""Webhook security: signing and verifying (Standard Webhooks, GitHub), the SSRF guard, delivery.

``signing`` uses only the standard library, so a receiver can copy that one file.
"""
