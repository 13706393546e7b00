"""Second factors of an account: enrolment and its changes (enrolment.py), the second step
of a sign-in (signin.py) and an admin's reset (reset.py)."""
