"""Procedural (synthetic) motion: the embedded dance, captioned actions and the text-motion dataset writer."""
