"""The one exception type for data that cannot be found, verified or read."""


class DataError(ValueError):
  """Data is missing, corrupt, truncated, unreadable or needs an absent dependency.

  The message always names the file or dataset involved and says how to fix it.
  """
