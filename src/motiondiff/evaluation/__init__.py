"""Evaluating finished runs: text-to-motion metrics with an evaluator, single-dance measures, reports, comparisons."""
