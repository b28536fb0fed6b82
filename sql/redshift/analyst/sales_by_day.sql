-- Ticket sales per day and channel (partition column sale_date prunes the scan).
with sales as (
    select
        sale_date,
        channel,
        price
    from cdc_lake.delta_emr_source_ticket_sales_spectrum
    where sale_date >= '2026-11-01'::date
),

final as (
    select
        sale_date,
        channel,
        count(*) as tickets,
        sum(price) as revenue
    from sales
    group by sale_date, channel
)

select
    sale_date,
    channel,
    tickets,
    revenue
from final
order by sale_date, channel
