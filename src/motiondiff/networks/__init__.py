"""Networks that map (x_t, t[, condition]) to x-shaped outputs, and the motion-text encoders of the evaluator."""
