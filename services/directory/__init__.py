"""The directory of organisations: who exists, what they may send to whom, and provisioning it."""
