"""parts-mcp: guarded parts look-up and ordering across supplier APIs, over MCP."""

__version__ = "0.1.0"
