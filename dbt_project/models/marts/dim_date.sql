-- The calendar: one row per UTC day from the first day of any price history to today. Rebuilt in full.
{{ config(materialized='table', file_format='iceberg') }}

with bounds as (
    select coalesce(min(day), current_date()) as first_day from {{ ref('fct_price_daily') }}
),

days as (
    select explode(sequence(first_day, greatest(first_day, current_date()), interval 1 day)) as date_day
    from bounds
)

select
    date_day,
    year(date_day) as year,
    quarter(date_day) as quarter,
    month(date_day) as month,
    date_format(date_day, 'MMMM') as month_name,
    dayofmonth(date_day) as day_of_month,
    -- ISO: Monday = 1 .. Sunday = 7
    (dayofweek(date_day) + 5) % 7 + 1 as iso_day_of_week,
    date_format(date_day, 'EEEE') as day_name,
    weekofyear(date_day) as iso_week,
    dayofweek(date_day) in (1, 7) as is_weekend,
    trunc(date_day, 'MM') as month_start,
    last_day(date_day) as month_end,
    trunc(date_day, 'YEAR') as year_start
from days
