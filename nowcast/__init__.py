"""nowcast: radar precipitation nowcasting from radar archives to verified forecasts."""

__version__ = "0.1.0"
