"""goliat-monitor: run and watch GOLIAT simulation campaigns."""

__version__ = "0.1.0"
