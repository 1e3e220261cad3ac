"""Errors a reader can fix.

Every problem caused by input (a data set that is missing or corrupt, an N-way K-shot setting a
split cannot supply, an unknown name) is raised as a :class:`MetaLearnError` whose message says
what went wrong *and what to do*. Command-line entry points (``common.cli.run``) print that message
on one line and exit with status 2 instead of showing a stack trace.
"""


class MetaLearnError(Exception):
    """Base class: an error with a message meant for the person running the code."""


class ConfigError(MetaLearnError, ValueError):
    """A setting that cannot work: unknown data set, too many ways, K+Q too large, ..."""


class DataNotFoundError(MetaLearnError, FileNotFoundError):
    """A data set is not on disk and could not be downloaded."""


class CorruptDataError(MetaLearnError):
    """A file is present but its contents are not what the data set must contain."""


class DownloadError(MetaLearnError):
    """A download failed, was cut short, or did not match its published checksum."""


class OutputError(MetaLearnError):
    """A file could not be written (a full disk, a read-only folder); what was there is kept."""
