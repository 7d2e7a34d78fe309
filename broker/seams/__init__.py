"""Code that reaches into a third-party library's internals, one module per library.

Each module here subclasses, overrides or patches something the library does not promise to keep (a
protocol class's attributes, a constructor, module attributes). Each names the versions it was written
for in `WRITTEN_FOR`; tests/test_seam_pins.py fails on any other installed version, and
docs/upgrade-checklist.md says what to re-check (and which test and bench prove it) before moving the pin.
Nothing outside this package touches those internals.
"""
