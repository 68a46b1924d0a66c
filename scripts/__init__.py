"""The long studies behind docs/ (``irregular``, ``continuous``, ``results``) and their shared
harness (:mod:`scripts.harness`); a package so tests import them (``from scripts import irregular``)."""
