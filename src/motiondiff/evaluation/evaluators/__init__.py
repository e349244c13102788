"""Motion-text evaluators behind one interface: trained by this framework, Guo et al.'s (t2m), TMR's, the course's."""
