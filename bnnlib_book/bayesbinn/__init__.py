"""The bayesbinn paper's chapter code."""
