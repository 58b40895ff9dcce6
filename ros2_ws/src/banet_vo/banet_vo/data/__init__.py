"""banet_vo.data."""
