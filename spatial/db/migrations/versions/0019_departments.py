"""The departments of the shipped maps, the four beyond the first five among them.

Construction (住建), municipal utilities (市政), forestry (林业) and agriculture (农业)
join planning, water, land resources and environmental protection (emergency command
came with migration 0015; water and environment were made by the demo's sensors when
missing): each a ``platform.departments`` row with its Chinese and English names, so
that a map's ``access: {departments: [forestry]}``, a collection's owner and a user's
department name a department that exists. Rows already there are left as they are.
The downgrade keeps them: departments are data (users, keys and grants may name them).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-07
"""

from __future__ import annotations

from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        INSERT INTO platform.departments (id, name, name_en) VALUES
            ('planning', '城乡规划', 'Urban planning'),
            ('water', '水利', 'Water resources'),
            ('land', '自然资源', 'Land resources'),
            ('environment', '生态环境', 'Environmental protection'),
            ('construction', '住房和城乡建设', 'Housing and urban-rural construction'),
            ('utilities', '市政公用', 'Municipal utilities'),
            ('forestry', '林业', 'Forestry'),
            ('agriculture', '农业农村', 'Agriculture and rural affairs')
        ON CONFLICT (id) DO NOTHING
        """
    )


def downgrade() -> None:
    """Nothing to undo: the departments stay (see the module's docstring)."""
