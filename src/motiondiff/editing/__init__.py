"""Editing motions with a trained model: masks over frames x features, sources, edit modes, the edit command."""
