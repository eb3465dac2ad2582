"""keywords"""
