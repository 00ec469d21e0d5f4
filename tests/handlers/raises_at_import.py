class ConfigurationError(Exception):
    pass


raise ConfigurationError("DATABASE_URL is not set")
