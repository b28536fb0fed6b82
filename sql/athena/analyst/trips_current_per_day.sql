-- How many trips existed at the end of each day: the versions current at the day's last
-- instant, from the history table. A version counts from the day it opened up to the day
-- before it closed, so per day: versions opened minus versions closed, summed over the days.
with calendar as (
    select calendar_days.calendar_day
    from unnest(sequence(date '2026-11-21', date '2026-11-23', interval '1' day)) as calendar_days (calendar_day)
),

events as (
    select
        cast(_valid_from as date) as event_day,
        1 as step
    from cdc_lake.delta_emr_source_travel_details_history
    union all
    select
        cast(_valid_to as date) as event_day,
        -1 as step
    from cdc_lake.delta_emr_source_travel_details_history
    where _valid_to is not null
),

per_day as (
    select
        event_day,
        sum(step) as net
    from events
    group by event_day
),

before_calendar as (
    select coalesce(sum(per_day.net), 0) as trips
    from per_day
    where per_day.event_day < (select min(calendar.calendar_day) from calendar)
),

final as (
    select
        calendar.calendar_day,
        before_calendar.trips + sum(coalesce(per_day.net, 0)) over (
            order by calendar.calendar_day rows between unbounded preceding and current row
        ) as trips
    from calendar
    cross join before_calendar
    left join per_day on calendar.calendar_day = per_day.event_day
)

select
    calendar_day,
    trips
from final
order by calendar_day
