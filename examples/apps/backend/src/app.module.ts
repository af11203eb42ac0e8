import { Module } from '@nestjs/common';
import { connectPostgres, connectRedis, POSTGRES, REDIS } from './clients';
import { HealthController } from './health.controller';
import { ItemsController } from './items.controller';
import { Lifecycle } from './lifecycle';

@Module({
  controllers: [HealthController, ItemsController],
  providers: [
    { provide: POSTGRES, useFactory: connectPostgres },
    { provide: REDIS, useFactory: connectRedis },
    Lifecycle,
  ],
})
export class AppModule {}
