"""Running the platform: the process supervisor behind ``cryptolake run``."""
