"""Tests of the images themselves: built with oci.build, run as their task definitions run them (oci.run)."""
