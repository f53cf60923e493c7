"""The routing hub: validates, authenticates, authorises and routes every ingress message."""
