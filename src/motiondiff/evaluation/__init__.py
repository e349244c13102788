"""Evaluation of finished runs: text-to-motion metrics with a trained evaluator, dance metrics, reports."""
