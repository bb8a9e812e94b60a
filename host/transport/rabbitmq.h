/* rabbitmq.h — the RabbitMQ transport (amqp:// and amqps:// URLs), DESIGN §5. */
#ifndef MOONBUS_TRANSPORT_RABBITMQ_H
#define MOONBUS_TRANSPORT_RABBITMQ_H

#include "transport.h"

extern const mb_transport_ops mb_rabbitmq_transport;

#endif
