"""Pure evaluation measures the platform gates read: fairness, calibration, bootstrap CIs."""
