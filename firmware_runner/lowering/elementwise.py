"""ADD, SUB and MUL, with broadcasting."""

LOWERINGS = {}
