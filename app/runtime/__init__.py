"""Hand-written, generic runtime: base classes and engines that generated code declares against.

Nothing here names an entity of any workbook; everything entity-specific comes from the Spec.
"""
