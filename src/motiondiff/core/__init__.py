"""Foundations every other room uses: user errors, tensor shape types, argument checks, Markdown tables."""
