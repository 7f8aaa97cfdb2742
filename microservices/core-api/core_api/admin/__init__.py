"""Administration from the server: the command line that makes the first administrator and
manages accounts (`cli`, `python -m core_api.admin`). The admin-only HTTP routes are in
api/routes/admin.py.

Who is an administrator is the `users.is_admin` column, set by ADMIN_EMAILS at signup or
login, by the CLI, or by another administrator; every check reads the current value
(`auth.user_state`), so a grant or revoke counts within USER_STATE_CACHE_S.
"""
