"""Small feature networks trained and cached by the suite (frozen at use)."""
from .digits import DigitsFeatureNet, get_digits_feature_net, load_digits_feature_net

__all__ = ["DigitsFeatureNet", "get_digits_feature_net", "load_digits_feature_net"]
